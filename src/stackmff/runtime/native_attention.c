/* The cross-layer attention of StackMFF V3 (stackmff.model.attention), inference only, as one
 * C kernel: float32, LANES pixels side by side in one vector (16 with AVX-512, else 8: one
 * register, so a projection's accumulators stay in registers), every token of a pixel kept in
 * cache through both transformer layers. Built on first use by stackmff.runtime.native_attention
 * with -DC0=... -DHEADS=... -DFFN=... for the model's widths. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef C0
#define C0 16
#endif
#ifndef HEADS
#define HEADS 4
#endif
#ifndef FFN
#define FFN 64
#endif
#define D (C0 / HEADS)
#define HALF (C0 / 2)
/* outputs and tokens computed together in a projection: ROWS x TOKENS accumulators, in
 * registers (all widths are multiples of 8) */
#ifndef ROWS
#define ROWS 4
#endif
#ifndef TOKENS
#define TOKENS 2
#endif

#include "native_vector.h"

/* exp(s) for s <= 0, clamped at -24: exp(s/32)^32 with a degree-10 Taylor polynomial
 * (relative error < 1e-7 over the range) */
static inline vec exp_nonpositive(vec s) {
    vec y = vmax(s, splat(-24.0f)) * (1.0f / 32.0f);
    vec r = splat(1.0f / 3628800.0f);
    r = r * y + 1.0f / 362880.0f;
    r = r * y + 1.0f / 40320.0f;
    r = r * y + 1.0f / 5040.0f;
    r = r * y + 1.0f / 720.0f;
    r = r * y + 1.0f / 120.0f;
    r = r * y + 1.0f / 24.0f;
    r = r * y + 1.0f / 6.0f;
    r = r * y + 0.5f;
    r = r * y + 1.0f;
    r = r * y + 1.0f;
    r *= r; r *= r; r *= r; r *= r; r *= r;
    return r;
}

/* one transformer layer's parameters, packed in this order (q rows pre-scaled) */
#define LAYER_FLOATS (3 * C0 * C0 + 3 * C0 + C0 * C0 + C0 + 2 * C0 + FFN * C0 + FFN + C0 * FFN + C0 + 2 * C0)

typedef struct {
    const float *in_w, *in_b, *out_w, *out_b, *n1_w, *n1_b, *l1_w, *l1_b, *l2_w, *l2_b, *n2_w, *n2_b;
} Layer;

static Layer unpack(const float *w) {
    Layer l;
    l.in_w = w; w += 3 * C0 * C0;
    l.in_b = w; w += 3 * C0;
    l.out_w = w; w += C0 * C0;
    l.out_b = w; w += C0;
    l.n1_w = w; w += C0;
    l.n1_b = w; w += C0;
    l.l1_w = w; w += FFN * C0;
    l.l1_b = w; w += FFN;
    l.l2_w = w; w += C0 * FFN;
    l.l2_b = w; w += C0;
    l.n2_w = w; w += C0;
    l.n2_b = w;
    return l;
}

/* out[rows][n] = b + w[rows][cols] @ x[cols][n] (+ residual[rows][n]); GELU after if asked.
 * TOKENS tokens at a time, so that each weight, broadcast once, feeds TOKENS products. */
static inline __attribute__((always_inline)) void project_tokens(vec *restrict out, const vec *restrict x,
                                  const float *restrict w, const float *restrict b,
                                  const vec *restrict residual, int o, int cols, int n, int k,
                                  int tokens, int apply_gelu) {
    vec acc[ROWS][TOKENS];
    for (int r = 0; r < ROWS; r++)
        for (int t = 0; t < tokens; t++)
            acc[r][t] = residual ? residual[(o + r) * n + k + t] + b[o + r] : splat(b[o + r]);
    for (int c = 0; c < cols; c++) {
        vec xc[TOKENS];
        for (int t = 0; t < tokens; t++) xc[t] = x[c * n + k + t];
        for (int r = 0; r < ROWS; r++) {
            vec weight = splat(w[(o + r) * cols + c]);
            for (int t = 0; t < tokens; t++) acc[r][t] += weight * xc[t];
        }
    }
    for (int r = 0; r < ROWS; r++)
        for (int t = 0; t < tokens; t++)
            out[(o + r) * n + k + t] = apply_gelu ? gelu(acc[r][t]) : acc[r][t];
}

static void project(vec *restrict out, const vec *restrict x, const float *restrict w,
                    const float *restrict b, const vec *restrict residual, int rows, int cols,
                    int n, int apply_gelu) {
    for (int o = 0; o < rows; o += ROWS) {
        int k = 0;
        for (; k + TOKENS <= n; k += TOKENS)
            project_tokens(out, x, w, b, residual, o, cols, n, k, TOKENS, apply_gelu);
        for (; k < n; k++)
            project_tokens(out, x, w, b, residual, o, cols, n, k, 1, apply_gelu);
    }
}

/* LayerNorm over the C0 channels of v[C0][n], in place */
static void norm(vec *restrict v, int n, const float *restrict weight, const float *restrict bias, float eps) {
    for (int k = 0; k < n; k++) {
        vec mean = splat(0.0f), var = splat(0.0f);
        for (int c = 0; c < C0; c++) mean += v[c * n + k];
        mean *= 1.0f / C0;
        for (int c = 0; c < C0; c++) {
            vec t = v[c * n + k] - mean;
            var += t * t;
        }
        var = var * (1.0f / C0) + eps;
        vec scale;
        for (int p = 0; p < LANES; p++) scale[p] = 1.0f / sqrtf(var[p]);
        for (int c = 0; c < C0; c++) v[c * n + k] = (v[c * n + k] - mean) * scale * weight[c] + bias[c];
    }
}

/* One row of LANES pixels from a bfloat16 volume, widened exactly to float (its top 16 bits). */
static inline vec load_bf16(const uint16_t *p, int width) {
    vec v;
    for (int i = 0; i < LANES; i++) {
        uint32_t bits = i < width ? (uint32_t)p[i] << 16 : 0;
        memcpy((char *)&v + i * sizeof(float), &bits, sizeof bits);
    }
    return v;
}

/* Logits of pixels [start, end) of one image: volume [n][C0][hw] (float, or bfloat16 if
 * `bf16`) -> logits [n][hw], the channel maximum after the cross-layer transformer layers.
 * weights: `layers` packed layers; tables: cos [C0][n] then sin [C0][n], or NULL without
 * rotary encoding. Returns 0, or -1 if scratch memory ran out. */
int stackmff_attend(const void *volume, int bf16, float *logits, long hw, long start, long end,
                    int n, const float *weights, int layers, const float *tables, float eps) {
    size_t tokens = (size_t)n;
    size_t bytes = sizeof(vec) * (tokens * (4 * C0 + 3 * C0 + FFN) + tokens);
    vec *buffer = aligned_alloc(64, (bytes + 63) / 64 * 64);  /* a multiple of the alignment */
    if (!buffer) return -1;
    vec *x = buffer, *y = x + C0 * tokens, *mixed = y + C0 * tokens, *rotated = mixed + C0 * tokens;
    vec *qkv = rotated + C0 * tokens, *hidden = qkv + 3 * C0 * tokens, *s = hidden + FFN * tokens;
    for (long p0 = start; p0 < end; p0 += LANES) {
        int width = end - p0 < LANES ? (int)(end - p0) : LANES;
        for (int k = 0; k < n; k++)
            for (int c = 0; c < C0; c++) {
                size_t offset = ((size_t)k * C0 + c) * hw + p0;
                const float *src = (const float *)volume + offset;
                if (bf16) x[c * n + k] = load_bf16((const uint16_t *)volume + offset, width);
                else if (width == LANES) x[c * n + k] = load(src);
                else for (int p = 0; p < LANES; p++) x[c * n + k][p] = p < width ? src[p] : 0.0f;
            }
        for (int layer = 0; layer < layers; layer++) {
            Layer l = unpack(weights + (size_t)layer * LAYER_FLOATS);
            if (tables) {  /* rotate-half by the stack position; the residual is rotated too */
                for (int c = 0; c < C0; c++)
                    for (int k = 0; k < n; k++) {
                        float cs = tables[c * n + k], sn = tables[C0 * n + c * n + k];
                        vec other = x[(c < HALF ? c + HALF : c - HALF) * n + k];
                        rotated[c * n + k] = x[c * n + k] * cs + other * (c < HALF ? -sn : sn);
                    }
                vec *swap = x; x = rotated; rotated = swap;
            }
            project(qkv, x, l.in_w, l.in_b, NULL, 3 * C0, C0, n, 0);
            for (int h = 0; h < HEADS; h++)
                for (int i = 0; i < n; i++) {
                    vec m = splat(-3.0e38f), total = splat(0.0f);
                    for (int j = 0; j < n; j++) {
                        vec score = splat(0.0f);
                        for (int f = 0; f < D; f++)
                            score += qkv[(h * D + f) * n + i] * qkv[(C0 + h * D + f) * n + j];
                        s[j] = score;
                        m = vmax(m, score);
                    }
                    for (int j = 0; j < n; j++) {
                        s[j] = exp_nonpositive(s[j] - m);
                        total += s[j];
                    }
                    total = 1.0f / total;
                    for (int f = 0; f < D; f++) {
                        vec acc = splat(0.0f);
                        for (int j = 0; j < n; j++) acc += s[j] * qkv[(2 * C0 + h * D + f) * n + j];
                        mixed[(h * D + f) * n + i] = acc * total;
                    }
                }
            project(y, mixed, l.out_w, l.out_b, x, C0, C0, n, 0);
            norm(y, n, l.n1_w, l.n1_b, eps);
            project(hidden, y, l.l1_w, l.l1_b, NULL, FFN, C0, n, 1);
            project(x, hidden, l.l2_w, l.l2_b, y, C0, FFN, n, 0);
            norm(x, n, l.n2_w, l.n2_b, eps);
        }
        for (int k = 0; k < n; k++) {
            vec best = x[k];
            for (int c = 1; c < C0; c++) best = vmax(best, x[c * n + k]);
            float *dst = logits + (size_t)k * hw + p0;
            if (width == LANES) memcpy(dst, &best, sizeof best);
            else for (int p = 0; p < width; p++) dst[p] = best[p];
        }
    }
    free(buffer);
    return 0;
}
