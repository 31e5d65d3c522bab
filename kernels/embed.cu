// Token and learned position embeddings.
#include "common.cuh"

// out[r] = w_e[ids[r]]. w_e: [d_vocab, d]  ids: [rows]  out: [rows, d]
extern "C" __global__ void embed(float* out, const float* w_e, const unsigned int* ids,
                                 int rows, int d) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * d) return;
    int r = (int)(i / d), c = (int)(i % d);
    out[i] = w_e[(long long)ids[r] * d + c];
}

// out[r] = w_pos[positions[r]]. w_pos: [n_ctx, d]  positions: [rows]  out: [rows, d]
extern "C" __global__ void embed_positions(float* out, const float* w_pos, const int* positions,
                                           int rows, int d) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * d) return;
    int r = (int)(i / d), c = (int)(i % d);
    out[i] = w_pos[(long long)positions[r] * d + c];
}
