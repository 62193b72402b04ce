// RUN: kiln-opt %s --kiln-pack-weights | FileCheck %s
// RUN: not kiln-opt %s --kiln-pack-weights --kiln-plan-memory --convert-kiln-to-cpu 2>&1 | FileCheck %s --check-prefix=LOWER

!q4_0 = !kiln.weight<64x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>
!q2_k = !kiln.weight<64x256x#kiln.quant<bits = 2, group = 16, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 4, layout = gguf>>

// A weight shared by an embedding and two linear layers (tied output): one
// pack, read by all three.
// CHECK-LABEL: func.func @tied
// CHECK: %[[W:.*]] = kiln.weight {{.*}} -> !kiln.weight<64x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>
// CHECK-NEXT: %[[P:.*]] = kiln.pack %[[W]] : {{.*}} -> !kiln.weight<64x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = rows16>>
// CHECK-NOT: kiln.pack
// CHECK: kiln.embedding %[[P]][
// CHECK: kiln.linear %{{.*}}, %[[P]]
// CHECK: kiln.linear %{{.*}}, %[[P]]
// Q2_K has no rows16 form, f32 weights need none.
// CHECK: %[[K:.*]] = kiln.weight {{.*}}layout = gguf>>
// CHECK-NOT: kiln.pack
// CHECK: kiln.linear %{{.*}}, %[[K]]
// CHECK: %[[F:.*]] = kiln.weight {{.*}} -> !kiln.weight<64x256xf32>
// CHECK: kiln.linear %{{.*}}, %[[F]]
// The lowering leaves packs to kiln-compile, which has the bytes.
// LOWER: error: 'kiln.pack' op is performed by kiln-compile as it writes the weights; lower the module with kiln-compile
func.func @tied(%ids: tensor<2xi32>) -> (tensor<2x64xf32>, tensor<2x64xf32>, tensor<2x64xf32>, tensor<2x64xf32>) {
  %w = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 9216> -> !q4_0
  %x = kiln.embedding %w[%ids] : !q4_0, tensor<2xi32> -> tensor<2x256xf32>
  %y = kiln.linear %x, %w : tensor<2x256xf32>, !q4_0 -> tensor<2x64xf32>
  %z = kiln.linear %x, %w : tensor<2x256xf32>, !q4_0 -> tensor<2x64xf32>
  %k = kiln.weight #kiln.external<"m.gguf", offset = 9216, size = 5376> -> !q2_k
  %u = kiln.linear %x, %k : tensor<2x256xf32>, !q2_k -> tensor<2x64xf32>
  %f = kiln.weight #kiln.external<"m.gguf", offset = 14592, size = 65536> -> !kiln.weight<64x256xf32>
  %v = kiln.linear %x, %f : tensor<2x256xf32>, !kiln.weight<64x256xf32> -> tensor<2x64xf32>
  return %y, %z, %u, %v : tensor<2x64xf32>, tensor<2x64xf32>, tensor<2x64xf32>, tensor<2x64xf32>
}
