// Tensor basics: shapes, strides, views sharing storage, dtype conversion, error types.
#include "check.h"
#include "ops/ops.h"

using namespace cgad;

int main() {
  Tensor t = arange(0, 24, 1, DType::Float32, Device{});
  CHECK(t.numel() == 24 && t.dim() == 1 && t.is_contiguous());
  Tensor m = reshape(t, {2, 3, 4});
  CHECK((m.strides() == Shape{12, 4, 1}));
  CHECK(m.raw_data() == t.raw_data());  // a view: same storage
  Tensor tr = transpose(m, 0, 2);
  CHECK((tr.shape() == Shape{4, 3, 2}) && !tr.is_contiguous());
  CHECK(tr.data<float>()[tr.strides()[0] * 1 + tr.strides()[2] * 1] == 13.0f);  // m[1][0][1]
  Tensor c = contiguous(tr);
  CHECK(c.is_contiguous() && c.data<float>()[1] == 12.0f);  // tr[0][0][1] = m[1][0][0]
  Tensor s = select(m, 1, 2);
  CHECK((s.shape() == Shape{2, 4}) && s.data<float>()[0] == 8.0f);
  Tensor d = to_dtype(m, DType::Float64);
  CHECK(d.dtype() == DType::Float64 && d.data<double>()[23] == 23.0);
  Tensor b = cast(full({3}, 2.0, DType::Float32, Device{}), DType::BFloat16);
  CHECK(float(cast(b, DType::Float32).data<float>()[2]) == 2.0f);
  CHECK_THROWS(ValueError, reshape(t, {5, 5}));
  CHECK_THROWS(IndexError, transpose(m, 0, 3));
  CHECK_THROWS(TypeError, full({2}, 1.0, DType::Int64, Device{}).set_requires_grad(true));
  CHECK_THROWS(ValueError, add(m, full({5}, 1.0, DType::Float32, Device{})));
  CHECK_THROWS(ValueError, empty({-1}, DType::Float32, Device{}));
  // The promotion table (torch.result_type) and the statistics dtype.
  CHECK(promote(DType::BFloat16, DType::Int64) == DType::BFloat16);
  CHECK(promote(DType::Int32, DType::BFloat16) == DType::BFloat16);
  CHECK(promote(DType::BFloat16, DType::Float32) == DType::Float32);
  CHECK(promote(DType::Bool, DType::Int32) == DType::Int32);
  CHECK(promote(DType::Int64, DType::Float32) == DType::Float32);
  CHECK(promote(DType::Float64, DType::Bool) == DType::Float64);
  CHECK(stats_dtype(DType::BFloat16) == DType::Float32 && stats_dtype(DType::Float64) == DType::Float64);
  CHECK_THROWS(TypeError, check_float_dtype(DType::BFloat16, "op", "x"));
  check_float_dtype(DType::BFloat16, "op", "x", true);
  return cgad_test::finish("test_tensor");
}
