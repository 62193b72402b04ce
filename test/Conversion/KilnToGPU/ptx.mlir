// RUN: kiln-opt %s --kiln-lower-to-cuda | FileCheck %s --implicit-check-not=__nv_

// kiln-lower-to-cuda down to PTX (format=isa, no CUDA toolkit needed): one
// PTX object per architecture in the gpu.binary, and the host step in the
// LLVM dialect calling rt->launch. The Q4_1 GEMV loads its activations
// with 128-bit loads (ld.global.v4), the weights as 32-bit words, fuses
// multiply-adds (fma.rn.f32) and sums the lanes with butterfly shuffles; the
// norm's sqrt is sqrt.rn.f32 and no libdevice function (__nv_*) is called.
// CHECK: llvm.func @forward(
// CHECK: %[[SLOT:.*]] = llvm.getelementptr %{{.*}}[2] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: %[[LAUNCH:.*]] = llvm.load %[[SLOT]] : !llvm.ptr -> !llvm.ptr
// CHECK: llvm.call %[[LAUNCH]](
// CHECK: llvm.call %[[LAUNCH]](
// CHECK: llvm.func @_mlir_ciface_forward(
// CHECK: gpu.binary @kiln_kernels
// CHECK-SAME: #gpu.object<#nvvm.target<chip = "sm_90a">
// CHECK-SAME: assembly = "
// CHECK-SAME: .target sm_90a
// CHECK-SAME: .visible .entry kiln_rms_norm_64_eps1em05_held(
// CHECK-SAME: shfl.sync.bfly.b32
// CHECK-SAME: sqrt.rn.f32
// CHECK-SAME: .visible .entry kiln_gemv_q4_1_32x64(
// CHECK-SAME: ld.global.b32
// CHECK-SAME: ld.global.v4.b32
// CHECK-SAME: fma.rn.f32
// CHECK-SAME: shfl.sync.bfly.b32 {{[^;]*}}, 16, 31, -1;
// CHECK-SAME: shfl.sync.bfly.b32 {{[^;]*}}, 1, 31, -1;
// CHECK-SAME: #gpu.object<#nvvm.target<chip = "sm_80">
// CHECK-SAME: .target sm_80
func.func @forward(%x: tensor<?x64xf32>) -> tensor<?x32xf32> attributes {kiln.max_tokens = 4} {
  %n = kiln.weight #kiln.external<"w.bin", offset = 0, size = 256> -> !kiln.weight<64xf32>
  %w = kiln.weight #kiln.external<"w.bin", offset = 256, size = 1280> -> !kiln.weight<32x64x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf>>
  %h = kiln.rms_norm %x, %n {epsilon = 1.0e-5 : f32} : tensor<?x64xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  %y = kiln.linear %h, %w : tensor<?x64xf32>, !kiln.weight<32x64x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf>> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}
