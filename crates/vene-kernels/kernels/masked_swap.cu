// vene masked swap kernels: out[r, i] = op(base[r, i], source[r, i]) for selected i.
//
// op: 0 replace (source), 1 add (base + source), 2 subtract (base - source).
// Half types combine in f32 and round once, like the `half` crate on the CPU.
// Row r uses selection list r / rows_per_list; a source row stride of 0 broadcasts one row.
#include <stdint.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>

template <typename T> __device__ __forceinline__ float to_f(T v) { return (float)v; }
template <> __device__ __forceinline__ float to_f<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_f(float v) { return (T)v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <typename T> __device__ __forceinline__ T combine(T b, T s, int op) {
    if (op == 0) return s;
    float fb = to_f(b), fs = to_f(s);
    return from_f<T>(op == 1 ? fb + fs : fb - fs);
}
template <> __device__ __forceinline__ float combine<float>(float b, float s, int op) {
    return op == 0 ? s : (op == 1 ? b + s : b - s);
}
template <> __device__ __forceinline__ double combine<double>(double b, double s, int op) {
    return op == 0 ? s : (op == 1 ? b + s : b - s);
}

// Sparse path: `out` already holds base; rewrite only the selected columns.
// Grid x strides over rows, grid y * block x strides over the entries of the row's list.
template <typename T>
__device__ void scatter(T *out, const T *src, const uint32_t *offsets, const uint32_t *idx,
                        uint64_t rows, uint64_t width, uint64_t src_stride,
                        uint64_t rows_per_list, int op) {
    for (uint64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const uint64_t k = r / rows_per_list;
        const uint32_t a = offsets[k], b = offsets[k + 1];
        T *orow = out + r * width;
        const T *srow = src + r * src_stride;
        for (uint64_t j = a + (uint64_t)blockIdx.y * blockDim.x + threadIdx.x; j < b;
             j += (uint64_t)gridDim.y * blockDim.x) {
            const uint32_t i = idx[j];
            orow[i] = combine<T>(orow[i], srow[i], op);
        }
    }
}

// Dense path: one read of base and source, one write of out, selection as a byte mask
// [lists, width]; grid-stride over elements.
template <typename T>
__device__ void dense(const T *base, const T *src, const uint8_t *mask, T *out, uint64_t rows,
                      uint64_t width, uint64_t src_stride, uint64_t rows_per_list, int op) {
    const uint64_t n = rows * width;
    for (uint64_t e = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (uint64_t)gridDim.x * blockDim.x) {
        const uint64_t r = e / width, c = e - r * width;
        const T b = base[e];
        out[e] = mask[(r / rows_per_list) * width + c] ? combine<T>(b, src[r * src_stride + c], op) : b;
    }
}

// Dense path with 16-byte vector loads: needs width and src_stride multiples of
// V = 16 / sizeof(T) and 16-byte aligned pointers (checked on the host).
template <typename T>
__device__ void dense_vec(const T *base, const T *src, const uint8_t *mask, T *out,
                          uint64_t rows, uint64_t width, uint64_t src_stride,
                          uint64_t rows_per_list, int op) {
    constexpr int V = 16 / sizeof(T);
    const uint64_t packs = rows * width / V;
    for (uint64_t p = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; p < packs;
         p += (uint64_t)gridDim.x * blockDim.x) {
        const uint64_t e = p * V;
        const uint64_t r = e / width, c = e - r * width;
        uint4 vb = *reinterpret_cast<const uint4 *>(base + e);
        const uint4 vs = *reinterpret_cast<const uint4 *>(src + r * src_stride + c);
        T *pb = reinterpret_cast<T *>(&vb);
        const T *ps = reinterpret_cast<const T *>(&vs);
        const uint8_t *m = mask + (r / rows_per_list) * width + c;
#pragma unroll
        for (int v = 0; v < V; ++v) {
            if (m[v]) pb[v] = combine<T>(pb[v], ps[v], op);
        }
        *reinterpret_cast<uint4 *>(out + e) = vb;
    }
}

#define VENE_KERNELS(T, NAME)                                                                  \
    extern "C" __global__ void vene_scatter_##NAME(                                            \
        T *out, const T *src, const uint32_t *offsets, const uint32_t *idx, uint64_t rows,     \
        uint64_t width, uint64_t src_stride, uint64_t rows_per_list, int op) {                 \
        scatter<T>(out, src, offsets, idx, rows, width, src_stride, rows_per_list, op);        \
    }                                                                                          \
    extern "C" __global__ void vene_dense_##NAME(                                              \
        const T *base, const T *src, const uint8_t *mask, T *out, uint64_t rows,               \
        uint64_t width, uint64_t src_stride, uint64_t rows_per_list, int op) {                 \
        dense<T>(base, src, mask, out, rows, width, src_stride, rows_per_list, op);            \
    }                                                                                          \
    extern "C" __global__ void vene_dense_vec_##NAME(                                          \
        const T *base, const T *src, const uint8_t *mask, T *out, uint64_t rows,               \
        uint64_t width, uint64_t src_stride, uint64_t rows_per_list, int op) {                 \
        dense_vec<T>(base, src, mask, out, rows, width, src_stride, rows_per_list, op);        \
    }

VENE_KERNELS(float, f32)
VENE_KERNELS(double, f64)
VENE_KERNELS(__half, f16)
VENE_KERNELS(__nv_bfloat16, bf16)
