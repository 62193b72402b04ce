// RUN: kiln-opt %s "--kiln-fuse=activation-bits=8" --kiln-plan-memory --convert-kiln-to-gpu | FileCheck %s
// RUN: kiln-opt %s --kiln-lower-to-cuda | FileCheck %s --check-prefix=PTX

// kiln-fuse folds the rope into the projection (kiln-lower-to-cuda asks for
// the epilogue). At one token the GEMV takes two rows a warp even at 128
// rows (a llama-style pair: dims 2i, 2i + 1 of a head) and rotates them as
// it stores them (_rope64: launch 1, after the quantization); prefill runs
// the product (tensor cores or the 4-token GEMV), then the rope kernel in
// place (launch 4).
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_quantize_a8_512", "kiln_gemv_q4_0_split_128x512_r2_q8_rope64_b10000_s1", "kiln_gemm_mma_q4_0_split_128x512_m16", "kiln_gemv_q4_0_split_128x512_t4", "kiln_rope_llama_2x64_r64_b10000_s1"]
// CHECK: scf.if
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c0_i32{{[_0-9]*}},
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c1_i32{{[_0-9]*}},
// CHECK-NOT: %c4_i32
// CHECK: } else {
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c2_i32{{[_0-9]*}},
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c3_i32{{[_0-9]*}},
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c4_i32{{[_0-9]*}},

// The epilogue: the warp's two sums, then lane 0 computes the pair's angle
// from the position argument (the fourth, after q, w and y), its sine
// and cosine as polynomials (no libdevice), and stores both rotated rows, 2i and 2i + 1.
// PTX: .visible .entry kiln_gemv_q4_0_split_128x512_r2_q8_rope64_b10000_s1(
// PTX: .param .u64 kiln_gemv_q4_0_split_128x512_r2_q8_rope64_b10000_s1_param_3
// PTX: dp4a.u32.s32
// PTX: shfl.sync.bfly.b32
// PTX-NOT: __nv_
// PTX: st.global.b32 \09[%rd[[ROW:[0-9]+]]],
// PTX: st.global.b32 \09[%rd[[ROW]]+4],
func.func @forward(%x: tensor<?x512xf32>, %p: index) -> tensor<?x128xf32> attributes {kiln.max_tokens = 16} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 36864> -> !kiln.weight<128x512x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  %y = kiln.linear %x, %w : tensor<?x512xf32>, !kiln.weight<128x512x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>> -> tensor<?x128xf32>
  %r = kiln.rope %y, %p {freq_base = 1.000000e+04 : f32, head_dim = 64 : i64, num_heads = 2 : i64, rotary_dim = 64 : i64, style = #kiln.rope_style<llama>} : tensor<?x128xf32> -> tensor<?x128xf32>
  return %r : tensor<?x128xf32>
}
