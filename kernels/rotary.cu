// Rotary position embeddings, HF's half-rotation layout: pairs (x[i], x[i + d_head/2]).
#include "common.cuh"

// x: [rows, heads, 2 * half]  cos, sin: [seq, half]  positions: [rows]
extern "C" __global__ void rotary(float* x, const float* cos_t, const float* sin_t,
                                  const int* positions, int rows, int heads, int half) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * heads * half) return;
    int k = (int)(i % half);
    long long rh = i / half;
    int r = (int)(rh / heads);
    float* h = x + rh * 2 * half;
    float c = cos_t[(long long)positions[r] * half + k], s = sin_t[(long long)positions[r] * half + k];
    float a = h[k], b = h[k + half];
    h[k] = a * c - b * s;
    h[k + half] = b * c + a * s;
}
