// cuBLASLt GEMMs for matmul (gemm_kernel) and the pieces every other GEMM of the backend uses.
// Descriptors are made per call (about a microsecond of host time, hidden behind the GPU's
// work on the one stream); the algorithm is cuBLASLt's first heuristic choice for the problem
// and the pointers' actual alignment, asked once per distinct problem and then cached (the
// query costs tens of microseconds, and a training step repeats the same GEMMs every step).
#include "backends/cuda/gemm.cuh"
#include <array>
#include <climits>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>
#include "backends/cuda/cublaslt_handle.cuh"
#include "backends/cuda/device_types.cuh"
#include "backends/cuda/runtime.h"
#include "core/error.h"
#include "kernels/linalg.h"

namespace cgad::cuda {

namespace {

// Owners of the cuBLASLt descriptors of one call. Destroy's status is dropped: it only fails
// for a null descriptor, which these never hold.
class MatmulDesc {
 public:
  MatmulDesc(cublasComputeType_t compute, cudaDataType_t scale) {
    CGAD_CUBLAS_CHECK(cublasLtMatmulDescCreate(&d_, compute, scale));
  }
  ~MatmulDesc() { cublasLtMatmulDescDestroy(d_); }
  MatmulDesc(const MatmulDesc&) = delete;
  MatmulDesc& operator=(const MatmulDesc&) = delete;
  template <typename V>
  void set(cublasLtMatmulDescAttributes_t attr, const V& v) {
    CGAD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d_, attr, &v, sizeof(v)));
  }
  cublasLtMatmulDesc_t get() const { return d_; }

 private:
  cublasLtMatmulDesc_t d_ = nullptr;
};

// A column-major (rows, cols) matrix with leading dim ld, `batch` of them `stride` elements apart.
class Layout {
 public:
  Layout(cudaDataType_t t, int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride) {
    CGAD_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l_, t, uint64_t(rows), uint64_t(cols), ld));
    if (batch > 1) {
      const int32_t count = int32_t(batch);
      CGAD_CUBLAS_CHECK(
          cublasLtMatrixLayoutSetAttribute(l_, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
      CGAD_CUBLAS_CHECK(
          cublasLtMatrixLayoutSetAttribute(l_, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
    }
  }
  ~Layout() { cublasLtMatrixLayoutDestroy(l_); }
  Layout(const Layout&) = delete;
  Layout& operator=(const Layout&) = delete;
  cublasLtMatrixLayout_t get() const { return l_; }

 private:
  cublasLtMatrixLayout_t l_ = nullptr;
};

class Preference {
 public:
  Preference() { CGAD_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&p_)); }
  ~Preference() { cublasLtMatmulPreferenceDestroy(p_); }
  Preference(const Preference&) = delete;
  Preference& operator=(const Preference&) = delete;
  template <typename V>
  void set(cublasLtMatmulPreferenceAttributes_t attr, const V& v) {
    CGAD_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(p_, attr, &v, sizeof(v)));
  }
  cublasLtMatmulPreference_t get() const { return p_; }

 private:
  cublasLtMatmulPreference_t p_ = nullptr;
};

cudaDataType_t data_type(DType d) {
  switch (d) {
    case DType::Float32: return CUDA_R_32F;
    case DType::Float64: return CUDA_R_64F;
    case DType::BFloat16: return CUDA_R_16BF;
    default: throw TypeError(str("matmul: expected a float32, float64 or bfloat16 tensor, got ", dtype_name(d)));
  }
}

// The largest power of two (up to cuBLASLt's default of 256) dividing the address of every
// matrix of an operand: views may start anywhere and step by any leading dim or batch stride,
// and an algorithm that assumes more alignment than the data has reads wrong addresses.
uint32_t alignment_of(const void* p, int64_t ld, int64_t batch, int64_t stride, size_t itemsize) {
  uint64_t bits = reinterpret_cast<uintptr_t>(p) | uint64_t(ld) * itemsize | 256u;
  if (batch > 1) bits |= uint64_t(stride) * itemsize;
  return uint32_t(bits & (~bits + 1));  // the lowest set bit
}

// Everything the heuristic's answer depends on.
using AlgoKey = std::array<int64_t, 20>;

struct AlgoKeyHash {
  size_t operator()(const AlgoKey& k) const {
    size_t h = 0;
    for (int64_t v : k) h = h * 1000003u ^ std::hash<int64_t>{}(v);
    return h;
  }
};

struct AlgoChoice {
  bool found = false;  // false: cuBLASLt has none (or refused the bias epilogue)
  cublasLtMatmulAlgo_t algo{};
};

class AlgoCache {
 public:
  bool lookup(const AlgoKey& k, AlgoChoice& out) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(k);
    if (it == map_.end()) return false;
    out = it->second;
    return true;
  }
  void insert(const AlgoKey& k, const AlgoChoice& c) {
    std::lock_guard<std::mutex> lock(mu_);
    if (map_.size() >= kMaxEntries) map_.clear();  // a model has a few dozen shapes; tests may have many
    map_[k] = c;
  }

 private:
  static constexpr size_t kMaxEntries = 4096;
  std::mutex mu_;
  std::unordered_map<AlgoKey, AlgoChoice, AlgoKeyHash> map_;
};

// Leaked on purpose, like the cuBLASLt contexts: GEMMs may run while static destructors do.
AlgoCache& algo_cache() {
  static AlgoCache& cache = *std::make_unique<AlgoCache>().release();
  return cache;
}

// K = 0: c = beta * c (+ bias) for every batch matrix, the CPU's definition.
template <typename S>
__global__ void scale_c_kernel(S* c, int64_t M, int64_t N, int64_t ldc, int64_t stride_c, int64_t total,
                               ComputeT<S> beta, const S* bias) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = i % N, r = i / N % M, bi = i / (N * M);
    S* p = c + bi * stride_c + r * ldc + j;
    ComputeT<S> v = beta == ComputeT<S>(0) ? ComputeT<S>(0) : beta * load(p);
    if (bias) v += load(bias + j);
    store(p, v);
  }
}

void scale_c(int device, const GemmArgs& g) {
  const int64_t total = g.batch * g.M * g.N;
  constexpr int kThreads = 256;
  dispatch_float<true>(g.c_dtype, "matmul", [&](auto tag) {
    using S = DeviceT<typename decltype(tag)::type>;
    scale_c_kernel<S><<<grid_stride_blocks(total, kThreads), kThreads, 0, stream(device)>>>(
        static_cast<S*>(g.c), g.M, g.N, g.ldc, g.stride_c, total, ComputeT<S>(g.beta), static_cast<const S*>(g.bias));
  });
  CGAD_CUDA_CHECK_LAUNCH();
}

}  // namespace

bool try_gemm(int device, const GemmArgs& g) {
  if (g.M == 0 || g.N == 0 || g.batch == 0) return true;
  if (g.batch > INT_MAX) throw ValueError(str("matmul: a batch of ", g.batch, " matrices exceeds cuBLASLt's limit"));
  DeviceGuard guard(device);
  if (g.K == 0) {
    scale_c(device, g);
    return true;
  }
  const LtContext& ctx = lt_context(device);
  if (g.c_dtype != g.dtype && !(g.dtype == DType::BFloat16 && g.c_dtype == DType::Float32))
    throw TypeError(str("matmul: a ", dtype_name(g.c_dtype), " product of ", dtype_name(g.dtype), " operands"));
  const cudaDataType_t t = data_type(g.dtype), tc = data_type(g.c_dtype);
  const bool f64 = g.dtype == DType::Float64;
  const cublasComputeType_t compute = f64 ? CUBLAS_COMPUTE_64F
                                      : g.dtype == DType::Float32 && tf32_enabled() ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                                    : CUBLAS_COMPUTE_32F;
  MatmulDesc desc(compute, f64 ? CUDA_R_64F : CUDA_R_32F);
  // The column-major trick (gemm.cuh): cuBLASLt's A is our b and its B our a.
  const cublasOperation_t op_a = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  desc.set(CUBLASLT_MATMUL_DESC_TRANSA, op_a);
  desc.set(CUBLASLT_MATMUL_DESC_TRANSB, op_b);
  if (g.bias) {  // cuBLASLt's bias has one entry per row of its D: our columns
    desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_BIAS);
    desc.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, g.bias);
    desc.set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, tc);
  }
  const Layout la(t, g.trans_b ? g.K : g.N, g.trans_b ? g.N : g.K, g.ldb, g.batch, g.stride_b);
  const Layout lb(t, g.trans_a ? g.M : g.K, g.trans_a ? g.K : g.M, g.lda, g.batch, g.stride_a);
  const Layout lc(tc, g.N, g.M, g.ldc, g.batch, g.stride_c);
  const size_t isz = itemsize(g.dtype), isz_c = itemsize(g.c_dtype);
  const uint32_t align_a = alignment_of(g.a, g.lda, g.batch, g.stride_a, isz),
                 align_b = alignment_of(g.b, g.ldb, g.batch, g.stride_b, isz),
                 align_c = alignment_of(g.c, g.ldc, g.batch, g.stride_c, isz_c),
                 align_bias = g.bias ? alignment_of(g.bias, 0, 1, 0, isz_c) : 0;
  const AlgoKey key{device, int64_t(g.dtype), int64_t(g.c_dtype), int64_t(compute), g.trans_a, g.trans_b,
                    g.M, g.N, g.K, g.batch, g.lda, g.ldb, g.ldc, g.stride_a, g.stride_b, g.stride_c,
                    align_a, align_b, align_c, align_bias};
  AlgoChoice choice;
  if (!algo_cache().lookup(key, choice)) {
    Preference pref;
    pref.set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t(ctx.workspace_bytes));
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_b);  // cuBLASLt's A is our b
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_a);
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_c);
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_c);
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(ctx.handle, desc.get(), la.get(), lb.get(), lc.get(),
                                                            lc.get(), pref.get(), 1, &result, &found);
    // cuBLASLt answers an epilogue it lacks for a type with NOT_SUPPORTED or INVALID_VALUE
    // depending on the version: with a bias, any refusal lets the caller retry without it (a
    // problem that is itself wrong then fails there, in gemm()).
    if (s != CUBLAS_STATUS_SUCCESS && s != CUBLAS_STATUS_NOT_SUPPORTED && !g.bias) CGAD_CUBLAS_CHECK(s);
    choice.found = s == CUBLAS_STATUS_SUCCESS && found > 0;
    choice.algo = result.algo;
    algo_cache().insert(key, choice);
  }
  if (!choice.found) return false;
  const float alpha32 = float(g.alpha), beta32 = float(g.beta);
  const void* alpha = f64 ? static_cast<const void*>(&g.alpha) : &alpha32;
  const void* beta = f64 ? static_cast<const void*>(&g.beta) : &beta32;
  CGAD_CUBLAS_CHECK(cublasLtMatmul(ctx.handle, desc.get(), alpha, g.b, la.get(), g.a, lb.get(), beta, g.c, lc.get(),
                                   g.c, lc.get(), &choice.algo, ctx.workspace, ctx.workspace_bytes, stream(device)));
  return true;
}

void gemm(int device, const GemmArgs& g) {
  if (!try_gemm(device, g))
    throw RuntimeError(str("matmul: cuBLASLt has no algorithm for a ", dtype_name(g.dtype), " -> ",
                           dtype_name(g.c_dtype), " GEMM (M=", g.M,
                           ", N=", g.N, ", K=", g.K, ", batch=", g.batch, ", trans_a=", g.trans_a,
                           ", trans_b=", g.trans_b, ", lda=", g.lda, ", ldb=", g.ldb, ", ldc=", g.ldc,
                           g.bias ? ", bias epilogue" : "", ")"));
}

void gemm_tensors(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, double alpha,
                  double beta) {
  if (c.numel() == 0) return;
  const size_t nbatch = size_t(c.dim() - 2);
  GemmArgs g;
  g.dtype = a.dtype();
  g.c_dtype = c.dtype();
  g.M = c.size(-2);
  g.N = c.size(-1);
  g.K = trans_a ? a.size(-2) : a.size(-1);
  g.trans_a = trans_a;
  g.trans_b = trans_b;
  g.lda = a.strides()[nbatch];
  g.ldb = b.strides()[nbatch];
  g.ldc = c.strides()[nbatch];
  g.alpha = alpha;
  g.beta = beta;
  // The batch dims, outermost first, size-1 dims dropped and neighbours that step evenly in all
  // three operands folded into one. The innermost becomes cuBLASLt's strided batch.
  struct BatchDim {
    int64_t size, sa, sb, sc;
  };
  std::vector<BatchDim> dims;
  for (size_t d = 0; d < nbatch; ++d) {
    const BatchDim cur{c.size(int64_t(d)), a.strides()[d], b.strides()[d], c.strides()[d]};
    if (cur.size == 1) continue;
    BatchDim* outer = dims.empty() ? nullptr : &dims.back();
    if (outer && outer->sa == cur.sa * cur.size && outer->sb == cur.sb * cur.size && outer->sc == cur.sc * cur.size)
      *outer = {outer->size * cur.size, cur.sa, cur.sb, cur.sc};
    else
      dims.push_back(cur);
  }
  if (!dims.empty()) {
    g.batch = dims.back().size;
    g.stride_a = dims.back().sa;
    g.stride_b = dims.back().sb;
    g.stride_c = dims.back().sc;
    dims.pop_back();
  }
  const int64_t isz = int64_t(itemsize(g.dtype)), isz_c = int64_t(itemsize(g.c_dtype));
  const char* pa = static_cast<const char*>(a.raw_data());
  const char* pb = static_cast<const char*>(b.raw_data());
  char* pc = static_cast<char*>(c.raw_data());
  const int device = c.device().index;
  std::vector<int64_t> idx(dims.size(), 0);
  for (;;) {  // one call per index of the outer (unfoldable) batch dims
    int64_t oa = 0, ob = 0, oc = 0;
    for (size_t d = 0; d < dims.size(); ++d) {
      oa += idx[d] * dims[d].sa;
      ob += idx[d] * dims[d].sb;
      oc += idx[d] * dims[d].sc;
    }
    g.a = pa + oa * isz;
    g.b = pb + ob * isz;
    g.c = pc + oc * isz_c;
    if (!try_gemm(device, g)) {
      // No algorithm for the strided batch (a broadcast operand's zero stride, say): its
      // matrices one by one, where a refusal is an error.
      GemmArgs one = g;
      one.batch = 1;
      for (int64_t i = 0; i < g.batch; ++i) {
        one.a = static_cast<const char*>(g.a) + i * g.stride_a * isz;
        one.b = static_cast<const char*>(g.b) + i * g.stride_b * isz;
        one.c = static_cast<char*>(g.c) + i * g.stride_c * isz_c;
        gemm(device, one);
      }
    }
    size_t d = dims.size();
    while (d > 0 && ++idx[d - 1] == dims[d - 1].size) idx[--d] = 0;
    if (d == 0) break;
  }
}

namespace {

const char* bf16_gemm_name() { return "cublasLt"; }

}  // namespace

CGAD_REGISTER_KERNEL(gemm_kernel, CUDA, gemm_tensors);
CGAD_REGISTER_KERNEL(bf16_gemm_name_kernel, CUDA, bf16_gemm_name);

}  // namespace cgad::cuda
