/* total += nearest_upsample(branch), both float32 in channels-last order (N, H, W, C), with
 * the source row and column of every output row and column given: the pyramid-FC's coarse
 * branches added into its full-resolution sum in one pass, without the upsampled copy that
 * PyTorch's interpolate writes first. One addition per element, as PyTorch's: the same bits.
 * Built on first use by stackmff.runtime.native_upsample. */
#include <stdint.h>

void stackmff_add_nearest(float *restrict total, long batch, long height, long width,
                          long channels, const float *restrict branch, long branch_height,
                          long branch_width, const int64_t *restrict rows,
                          const int64_t *restrict cols) {
    for (long b = 0; b < batch; b++) {
        for (long y = 0; y < height; y++) {
            float *restrict out = total + ((b * height + y) * width) * channels;
            const float *restrict source = branch + ((b * branch_height + rows[y]) * branch_width) * channels;
            for (long x = 0; x < width; x++) {
                const float *restrict in = source + cols[x] * channels;
                float *restrict o = out + x * channels;
                for (long c = 0; c < channels; c++)
                    o[c] += in[c];
            }
        }
    }
}
