/* What the runtime's C kernels share: LANES float32 lanes in one vector of the target (16
 * with AVX-512, else 8: one register, so a kernel's accumulators stay in registers), and the
 * exact GELU as PyTorch computes it, to rounding. Included by native_attention.c and
 * native_head.c; stackmff.runtime.native_build rebuilds a kernel when this file changes. */
#ifndef STACKMFF_NATIVE_VECTOR_H
#define STACKMFF_NATIVE_VECTOR_H
#include <string.h>

#ifndef LANES
#ifdef __AVX512F__
#define LANES 16
#else
#define LANES 8
#endif
#endif
typedef float vec __attribute__((vector_size(4 * LANES)));
typedef int ivec __attribute__((vector_size(4 * LANES)));

/* every lane a; "a - 0" folds to a (a + 0 does not, -0 + 0 being +0), so this is one
 * broadcast with no addition */
static inline vec splat(float a) { return a - (vec){0}; }
static inline vec pick(ivec mask, vec yes, vec no) { return (vec)((mask & (ivec)yes) | (~mask & (ivec)no)); }
static inline vec vmax(vec a, vec b) { return pick(a > b, a, b); }
static inline vec load(const float *p) { vec v; memcpy(&v, p, sizeof v); return v; }

/* exact GELU x * Phi(x); erf by Abramowitz-Stegun 7.1.28 (|error| < 3e-7):
 * erf(a) = 1 - (1 + a1 a + ... + a6 a^6)^-16 for a >= 0 */
static inline vec gelu(vec x) {
    vec a = (vec)((ivec)x & 0x7fffffff) * 0.70710678118654752f;
    a = pick(a > 6.0f, splat(6.0f), a);
    vec r = 0.0000430638f * a + 0.0002765672f;
    r = r * a + 0.0001520143f;
    r = r * a + 0.0092705272f;
    r = r * a + 0.0422820123f;
    r = r * a + 0.0705230784f;
    r = r * a + 1.0f;
    r *= r; r *= r; r *= r; r *= r;
    vec tail = 0.5f / r;  /* Phi(-|x|) */
    return x * pick(x < 0.0f, tail, 1.0f - tail);
}

#endif
