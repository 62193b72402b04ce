// RUN: kiln-opt %s --split-input-file "--kiln-fuse=rope-epilogue=false activation-bits=8" --kiln-plan-memory --convert-kiln-to-gpu | FileCheck %s
// RUN: kiln-opt %s --split-input-file --kiln-lower-to-cuda | FileCheck %s --check-prefix=PTX
// RUN: kiln-opt %s --split-input-file --kiln-lower-to-cuda=activation-bits=0 | FileCheck %s --check-prefix=F32

// kiln-fuse marks the norm and the SwiGLU that int8 GEMVs read
// (kiln.quantize_output = 8). At one token their kernels (_q8) also write the
// quantized copy into the step's workspace (2048 codes + 3 * 256 bytes =
// 2816), so no kiln_quantize_a8 kernel runs: launch 0 (the norm, 4 warps a
// 2048-wide row) feeds both GEMVs (launch 2, twice), launch 4 (the SwiGLU)
// the down projection (launch 6). More tokens launch the plain kernels.
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_rms_norm_2048_eps1em05_v4_w4_q8", "kiln_rms_norm_2048_eps1em05_v4_w4", "kiln_gemv_q4_0_split_128x2048_q8", "kiln_gemv_q4_0_split_128x2048_t4", "kiln_swiglu_128_q8", "kiln_swiglu", "kiln_gemv_q4_0_split_64x128_q8", "kiln_gemv_q4_0_split_64x128_t4", "kiln_copy"]
// CHECK: scf.if
// CHECK: memref.view %{{.*}} : memref<?xi8> to memref<2816xi8>
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c0_i32{{[_0-9]*}},
// CHECK: } else {
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c1_i32{{[_0-9]*}},
// CHECK: scf.if
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c2_i32{{[_0-9]*}},
// CHECK: scf.if
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c2_i32{{[_0-9]*}},
// CHECK: scf.if
// CHECK: memref.view %{{.*}} : memref<?xi8> to memref<2816xi8>
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c4_i32{{[_0-9]*}},
// CHECK: } else {
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c5_i32{{[_0-9]*}},
// CHECK: scf.if
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c6_i32{{[_0-9]*}},

// The norm's 4 warps meet in shared memory after their shuffles (one
// barrier); each thread then quantizes its 4 quads of 4 values as
// kiln_quantize_a8 does (3 + 3 shuffles a quad, prmt packing, dp4a sums).
// PTX: .visible .entry kiln_rms_norm_2048_eps1em05_v4_w4_q8(
// PTX-COUNT-5: shfl.sync.bfly.b32
// PTX: st.shared.b32
// PTX: bar.sync
// PTX: ld.shared
// PTX: sqrt.rn.f32
// PTX: st.global.v4.b32
// PTX: shfl.sync.bfly.b32
// PTX: div.rn.f32
// PTX: add.rn.f32{{[^;]*}} 0f4B400000;
// PTX: prmt.b32{{[^;]*}} 0x5410U;
// PTX: dp4a.s32.s32
// PTX: .visible .entry kiln_rms_norm_2048_eps1em05_v4_w4(
// PTX-NOT: dp4a
// PTX: .visible .entry kiln_gemv_q4_0_split_128x2048_q8(
// PTX: .visible .entry kiln_swiglu_128_q8(
// PTX: ld.global.v4.b32
// PTX: ld.global.v4.b32
// PTX: st.global.v4.b32
// PTX: dp4a.s32.s32
// PTX-NOT: kiln_quantize_a8

// Float activations: neither the _q8 kernels nor any quantization.
// F32-NOT: _q8
// F32-NOT: kiln_quantize
func.func @forward(%x: tensor<?x2048xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>) attributes {kiln.max_tokens = 4} {
  %n = kiln.weight #kiln.external<"w.bin", offset = 0, size = 8192> -> !kiln.weight<2048xf32>
  %h = kiln.rms_norm %x, %n {epsilon = 1.0e-05 : f32} : tensor<?x2048xf32>, !kiln.weight<2048xf32> -> tensor<?x2048xf32>
  %wg = kiln.weight #kiln.external<"w.bin", offset = 8192, size = 147456> -> !kiln.weight<128x2048x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  %g = kiln.linear %h, %wg : tensor<?x2048xf32>, !kiln.weight<128x2048x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>> -> tensor<?x128xf32>
  %u = kiln.linear %h, %wg : tensor<?x2048xf32>, !kiln.weight<128x2048x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>> -> tensor<?x128xf32>
  %s = kiln.swiglu %g, %u : tensor<?x128xf32>
  %wd = kiln.weight #kiln.external<"w.bin", offset = 155648, size = 4608> -> !kiln.weight<64x128x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  %d = kiln.linear %s, %wd : tensor<?x128xf32>, !kiln.weight<64x128x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>> -> tensor<?x64xf32>
  return %d, %d : tensor<?x64xf32>, tensor<?x64xf32>
}

// -----

// Any binary elementwise op kiln-fuse marks does the same: a GeGLU (tanh)
// before an int8 GEMV, four values a thread (128-bit loads of both inputs),
// its tanh a polynomial.
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_geglu_tanh_256_q8", "kiln_geglu_tanh", "kiln_gemv_q4_0_split_64x256_q8", "kiln_gemv_q4_0_split_64x256_t4"]
// CHECK: scf.if
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c0_i32{{[_0-9]*}},
// CHECK: } else {
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c1_i32{{[_0-9]*}},
// CHECK: scf.if
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c2_i32{{[_0-9]*}},
// PTX: .visible .entry kiln_geglu_tanh_256_q8(
// PTX: ld.global.v4.b32
// PTX: ld.global.v4.b32
// PTX: st.global.v4.b32
// PTX: dp4a.s32.s32
func.func @forward(%a: tensor<?x256xf32>, %b: tensor<?x256xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 4} {
  %g = kiln.geglu %a, %b {approximate = #kiln.gelu_approx<tanh>} : tensor<?x256xf32>
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 9216> -> !kiln.weight<64x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  %y = kiln.linear %g, %w : tensor<?x256xf32>, !kiln.weight<64x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
