// Built-in interventions on the device: the host lists the slices an intervention touches
// (start in the activation, length, offset in the source of a set), one kernel applies the op.
#include "common.cuh"

// op 0 zero, 1 scale by factor, 2 add vector[j], 3 set from values[src + j].
// seg_dst, seg_src: [n_segs]  seg_len: every segment's length
extern "C" __global__ void apply_segments(float* data, const long long* seg_dst, const long long* seg_src,
                                          int seg_len, int n_segs, int op, float factor,
                                          const float* vector, const float* values) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)n_segs * seg_len) return;
    int seg = (int)(i / seg_len), j = (int)(i % seg_len);
    float* x = data + seg_dst[seg] + j;
    if (op == 0) *x = 0.0f;
    else if (op == 1) *x *= factor;
    else if (op == 2) *x += vector[j];
    else *x = values[seg_src[seg] + j];
}
