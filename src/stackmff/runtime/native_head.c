/* The v3+ head's convolutions (stackmff.runtime.refine_inference), inference only, in C:
 * float32 planar maps (layer, channel, row, column), LANES columns side by side, one
 * accumulator register per output channel (-DOUTS= the head's width), every tap read from
 * rows padded by replication as PyTorch's replicate padding pads them; bias, GELU, the
 * residual and the maximum over the layers in the same pass. Built on first use by stackmff.runtime.native_head. */
#include <stdlib.h>
#include <string.h>

#include "native_vector.h"

#ifndef OUTS
#define OUTS 12
#endif
/* column blocks computed together, so that each weight, broadcast once, feeds BLOCKS
 * products: two where the registers hold 2 x OUTS accumulators (AVX-512 has 32) */
#ifndef BLOCKS
#if LANES == 16 && OUTS <= 12
#define BLOCKS 2
#else
#define BLOCKS 1
#endif
#endif
#define STEP (BLOCKS * LANES)

static inline long clamp(long v, long low, long high) { return v < low ? low : v > high ? high : v; }

/* the first n floats at p (none if n <= 0), the rest zero */
static inline vec load_part(const float *p, long n) {
    if (n >= LANES) return load(p);
    vec v = splat(0.0f);
    if (n > 0) memcpy(&v, p, sizeof(float) * n);
    return v;
}

/* out[l, o] = act(bias[o] + base[o] + sum over c and the k x k taps of
 *                 weight[c, ky, kx, o] * in[l, c, y + (ky - k/2) d, x + (kx - k/2) d])
 *             + residual[l, o]
 * in: [layers, channels, rows, width]; base (optional): [outs, rows, width], the same for
 * every layer; residual (optional): [layers, outs, rows, width]; out: the same shape, not
 * the input; maximum (optional): [outs, rows, width], out's maximum over the layers (what
 * the next convolution's shared half reads). Returns 1 if out of memory. */
static inline __attribute__((always_inline)) int convolve(
        const float *restrict in, long layers, long channels, long rows, long width,
        const float *restrict weight, const float *restrict bias, const float *restrict base,
        int outs, int k, long dilation, int apply_gelu, const float *restrict residual,
        float *restrict out, float *restrict maximum) {
    long reach = k / 2 * dilation, plane = rows * width;
    long padded = (width + STEP - 1) / STEP * STEP + 2 * reach;
    float *buffer = malloc(sizeof(float) * k * channels * padded);
    if (!buffer) return 1;
    for (long l = 0; l < layers; l++) {
        for (long y = 0; y < rows; y++) {
            /* the rows this output row reads, every channel's, padded by replication */
            for (int ky = 0; ky < k; ky++) {
                long source = clamp(y + (ky - k / 2) * dilation, 0, rows - 1);
                for (long c = 0; c < channels; c++) {
                    const float *src = in + (l * channels + c) * plane + source * width;
                    float *dst = buffer + (ky * channels + c) * padded;
                    for (long i = 0; i < reach; i++) dst[i] = src[0];
                    memcpy(dst + reach, src, sizeof(float) * width);
                    for (long i = reach + width; i < padded; i++) dst[i] = src[width - 1];
                }
            }
            for (long x = 0; x < width; x += STEP) {
                vec acc[BLOCKS][OUTS];
                for (int b = 0; b < BLOCKS; b++)
                    for (int o = 0; o < outs; o++) {
                        acc[b][o] = splat(bias ? bias[o] : 0.0f);
                        if (base) acc[b][o] += load_part(base + o * plane + y * width + x + b * LANES,
                                                         width - x - b * LANES);
                    }
                for (long c = 0; c < channels; c++)
                    for (int ky = 0; ky < k; ky++) {
                        const float *row = buffer + (ky * channels + c) * padded + x;
                        for (int kx = 0; kx < k; kx++) {
                            vec v[BLOCKS];
                            for (int b = 0; b < BLOCKS; b++) v[b] = load(row + kx * dilation + b * LANES);
                            const float *w = weight + ((c * k + ky) * k + kx) * outs;
                            for (int o = 0; o < outs; o++) {
                                vec weight_o = splat(w[o]);
                                for (int b = 0; b < BLOCKS; b++) acc[b][o] += weight_o * v[b];
                            }
                        }
                    }
                for (int b = 0; b < BLOCKS; b++) {
                    long start = x + b * LANES, valid = width - start < LANES ? width - start : LANES;
                    if (valid <= 0) break;
                    for (int o = 0; o < outs; o++) {
                        long at = (l * outs + o) * plane + y * width + start;
                        vec r = apply_gelu ? gelu(acc[b][o]) : acc[b][o];
                        if (residual) r += load_part(residual + at, valid);
                        memcpy(out + at, &r, sizeof(float) * valid);
                        if (maximum) {
                            float *m = maximum + o * plane + y * width + start;
                            if (l > 0) r = vmax(r, load_part(m, valid));
                            memcpy(m, &r, sizeof(float) * valid);
                        }
                    }
                }
            }
        }
    }
    free(buffer);
    return 0;
}

/* OUTS output channels: the head's hidden convolutions */
int stackmff_head_conv(const float *in, long layers, long channels, long rows, long width,
                       const float *weight, const float *bias, const float *base, int k,
                       long dilation, int apply_gelu, const float *residual, float *out,
                       float *maximum) {
    return convolve(in, layers, channels, rows, width, weight, bias, base, OUTS, k, dilation,
                    apply_gelu, residual, out, maximum);
}

/* one output channel: the head's last convolution */
int stackmff_head_conv1(const float *in, long layers, long channels, long rows, long width,
                        const float *weight, const float *bias, const float *base, int k,
                        long dilation, int apply_gelu, const float *residual, float *out,
                        float *maximum) {
    return convolve(in, layers, channels, rows, width, weight, bias, base, 1, k, dilation,
                    apply_gelu, residual, out, maximum);
}
