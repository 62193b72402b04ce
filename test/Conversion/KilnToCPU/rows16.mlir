// RUN: kiln-opt %s --convert-kiln-to-cpu | FileCheck %s
// RUN: not kiln-opt %s --convert-kiln-to-cpu=activations=f32 2>&1 | FileCheck %s --check-prefix=F32

!r16 = !kiln.weight<32x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = rows16>>

// A rows16 weight: activations quantized once, then the 16-row kernel.
// CHECK-LABEL: func.func @linear
// CHECK: call @kiln_quantize_q8_256(
// CHECK: call @kiln_linear_r16_generic_q4_k_256x32(
// CHECK: func.func private @kiln_linear_r16_generic_q4_k_256x32
// F32: error: 'kiln.linear' op layout = rows16 weights need activations=int8
func.func @linear(%x: tensor<?x256xf32>) -> tensor<?x32xf32> attributes {kiln.max_tokens = 4} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 4736> -> !r16
  %y = kiln.linear %x, %w : tensor<?x256xf32>, !r16 -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}
