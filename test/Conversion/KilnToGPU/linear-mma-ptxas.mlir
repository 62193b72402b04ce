// REQUIRES: ptxas
// RUN: kiln-opt %s "--kiln-lower-to-cuda=format=bin toolkit=%cuda_toolkit" | FileCheck %s

// ptxas (the CUDA toolkit's, as kiln-compile runs it for cubins) assembles
// the tensor-core GEMM kernels of LinearMma.cpp, Q4_0 and Q8_0, both tilings,
// for sm_90a and sm_80: one cubin (ELF) per architecture holding them.
// CHECK: gpu.binary @kiln_kernels
// CHECK-SAME: #gpu.object<#nvvm.target<chip = "sm_90a">, properties = {{{[^}]*}}}, bin = "\7FELF
// CHECK-SAME: kiln_gemm_mma_q4_0_split_256x256_m64
// CHECK-SAME: kiln_gemm_mma_q4_0_split_256x256_m16
// CHECK-SAME: kiln_gemm_mma_q8_0_split_256x256_m64
// CHECK-SAME: #gpu.object<#nvvm.target<chip = "sm_80">, properties = {{{[^}]*}}}, bin = "\7FELF
func.func @forward(%x: tensor<?x256xf32>) -> (tensor<?x256xf32>, tensor<?x256xf32>) attributes {kiln.max_tokens = 512} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 36864> -> !kiln.weight<256x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  %y = kiln.linear %x, %w : tensor<?x256xf32>, !kiln.weight<256x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>> -> tensor<?x256xf32>
  %v = kiln.weight #kiln.external<"w.bin", offset = 36864, size = 69632> -> !kiln.weight<256x256x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  %z = kiln.linear %x, %v : tensor<?x256xf32>, !kiln.weight<256x256x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>> -> tensor<?x256xf32>
  return %y, %z : tensor<?x256xf32>, tensor<?x256xf32>
}
