// Row movement: gathers, K/V assembly from a base run's prefix, and the per-head reshuffles of
// the opt-in hook points.
#include "common.cuh"

// out[i] = src[rows[i]]. src: [*, width]  out: [n, width]
extern "C" __global__ void gather_rows(float* out, const float* src, const int* rows, int n, int width) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)n * width) return;
    out[i] = src[(long long)rows[i / width] * width + i % width];
}

// Sequences with a prefix take the base run's block: full[s] = cache[seq_of[s]] where
// partial[s]. full: [batch, seq_len * width]  cache: [bases, seq_len * width]
extern "C" __global__ void copy_prefix(float* full, const float* cache, const int* seq_of,
                                       const int* partial, int batch, long long block) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)batch * block) return;
    int s = (int)(i / block);
    if (partial[s]) full[i] = cache[(long long)seq_of[s] * block + i % block];
}

// Computed rows go to their positions: full[row_seq[r], row_pos[r]] = rows[r].
// rows: [n, width]  full: [batch, seq_len, width]
extern "C" __global__ void scatter_rows(float* full, const float* rows, const int* row_seq,
                                        const int* row_pos, int n, int seq_len, int width) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)n * width) return;
    int r = (int)(i / width);
    full[((long long)row_seq[r] * seq_len + row_pos[r]) * width + i % width] = rows[i];
}

// out[r, h] = x[r] for every head. x: [rows, d]  out: [rows, heads, d]
extern "C" __global__ void repeat_per_head(float* out, const float* x, int rows, int heads, int d) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * heads * d) return;
    out[i] = x[(i / ((long long)heads * d)) * d + i % d];
}

// out[r, h*dh + c] = product[(r, h), h*dh + c]. product: [rows, heads, heads * dh]
// out: [rows, heads * dh]
extern "C" __global__ void own_head_columns(float* out, const float* product, int rows, int heads, int dh) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long width = (long long)heads * dh;
    if (i >= rows * width) return;
    long long r = i / width, col = i % width, h = col / dh;
    out[i] = product[(r * heads + h) * width + col];
}

// masked = z with every head but h zeroed. z, masked: [rows, heads * dh]
extern "C" __global__ void mask_head(float* masked, const float* z, int rows, int heads, int dh, int h) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long width = (long long)heads * dh;
    if (i >= rows * width) return;
    masked[i] = ((i % width) / dh == h) ? z[i] : 0.0f;
}

// result[r, h] = part[r]. part: [rows, d]  result: [rows, heads, d]
extern "C" __global__ void put_head(float* result, const float* part, int rows, int heads, int d, int h) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * d) return;
    long long r = i / d;
    result[(r * heads + h) * d + i % d] = part[i];
}

// out[r] = sum_h result[r, h] + b_o. result: [rows, heads, d]  out: [rows, d]
extern "C" __global__ void sum_heads(float* out, const float* result, const float* b_o, int has_b,
                                     int rows, int heads, int d) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)rows * d) return;
    long long r = i / d;
    int c = (int)(i % d);
    float acc = has_b ? b_o[c] : 0.0f;
    for (int h = 0; h < heads; ++h) acc += result[(r * heads + h) * d + c];
    out[i] = acc;
}
