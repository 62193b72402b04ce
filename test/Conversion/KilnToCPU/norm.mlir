// RUN: kiln-opt %s --split-input-file --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu | FileCheck %s

// The norm kernels' emitted IR: one row per iteration, 16-lane sums of
// squares reduced horizontally, 1 / sqrt(mean + epsilon), weights
// dequantized in registers.

// CHECK-LABEL: func.func @rms_norm(
// CHECK: call @kiln_rms_norm_f32_64_eps0x1_0c6f7ap_20(
// CHECK-NOT: call @kiln_quantize_q8
// CHECK-LABEL: func.func private @kiln_rms_norm_f32_64_eps0x1_0c6f7ap_20(
// CHECK-DAG: %[[ZERO:.*]] = arith.constant dense<0.000000e+00> : vector<16xf32>
// CHECK-DAG: %[[EPS:.*]] = arith.constant 9.99999997E-7 : f32
// CHECK-DAG: %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK-DAG: %[[DIM:.*]] = arith.constant 6.400000e+01 : f32
// CHECK: scf.for
// CHECK: %[[SQ:.*]] = scf.for {{.*}} iter_args(%[[ACC:.*]] = %[[ZERO]]) -> (vector<16xf32>)
// CHECK: %[[X:.*]] = vector.load %{{.*}} : memref<?x64xf32, strided<[64, 1], offset: ?>>, vector<16xf32>
// CHECK: vector.fma %[[X]], %[[X]], %[[ACC]] : vector<16xf32>
// CHECK: %[[SUM:.*]] = vector.reduction <add>, %[[SQ]] : vector<16xf32> into f32
// CHECK: %[[MEAN:.*]] = arith.divf %[[SUM]], %[[DIM]] : f32
// CHECK: %[[VAR:.*]] = arith.addf %[[MEAN]], %[[EPS]] : f32
// CHECK: %[[ROOT:.*]] = math.sqrt %[[VAR]] : f32
// CHECK: %[[INV:.*]] = arith.divf %[[ONE]], %[[ROOT]] : f32
// CHECK: %[[INVV:.*]] = vector.broadcast %[[INV]] : f32 to vector<16xf32>
// CHECK: %[[XN:.*]] = arith.mulf %{{.*}}, %[[INVV]] : vector<16xf32>
// f32 weights: 64 bytes reinterpreted as 16 lanes.
// CHECK: %[[WB:.*]] = vector.load %{{.*}}[%{{.*}}] : memref<?xi8>, vector<64xi8>
// CHECK: %[[W:.*]] = vector.bitcast %[[WB]] : vector<64xi8> to vector<16xf32>
// CHECK: %[[Y:.*]] = arith.mulf %[[XN]], %[[W]] : vector<16xf32>
// CHECK: vector.store %[[Y]], %{{.*}} : memref<?x64xf32, strided<[64, 1], offset: ?>>, vector<16xf32>
// CHECK-NOT: math.roundeven
// CHECK: return
func.func @rms_norm(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %g = kiln.weight #kiln.external<"w.bin", offset = 0, size = 256> -> !kiln.weight<64xf32>
  %y = kiln.rms_norm %x, %g {epsilon = 1.0e-6 : f32} : tensor<?x64xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// layer_norm: the mean first, then the centred sum of squares; the bias is
// added after the weight.
// CHECK-LABEL: func.func @layer_norm(
// CHECK: call @kiln_layer_norm_f32_64_eps0x1_4f8b58p_17_bias(
// CHECK-LABEL: func.func private @kiln_layer_norm_f32_64_eps0x1_4f8b58p_17_bias(
// CHECK-DAG: %[[ZERO:.*]] = arith.constant dense<0.000000e+00> : vector<16xf32>
// CHECK-DAG: %[[DIM:.*]] = arith.constant 6.400000e+01 : f32
// CHECK: %[[S:.*]] = scf.for {{.*}} iter_args(%[[ACC:.*]] = %[[ZERO]]) -> (vector<16xf32>)
// CHECK: %[[X:.*]] = vector.load %{{.*}} vector<16xf32>
// CHECK: arith.addf %[[ACC]], %[[X]] : vector<16xf32>
// CHECK: %[[TOTAL:.*]] = vector.reduction <add>, %[[S]] : vector<16xf32> into f32
// CHECK: %[[MEAN:.*]] = arith.divf %[[TOTAL]], %[[DIM]] : f32
// CHECK: %[[MEANV:.*]] = vector.broadcast %[[MEAN]] : f32 to vector<16xf32>
// CHECK: scf.for {{.*}} -> (vector<16xf32>)
// CHECK: %[[C:.*]] = arith.subf %{{.*}}, %[[MEANV]] : vector<16xf32>
// CHECK: vector.fma %[[C]], %[[C]], %{{.*}} : vector<16xf32>
// CHECK: vector.reduction <add>, %{{.*}} : vector<16xf32> into f32
// CHECK: math.sqrt %{{.*}} : f32
// CHECK: arith.subf %{{.*}}, %[[MEANV]] : vector<16xf32>
// CHECK: %[[WB:.*]] = vector.bitcast %{{.*}} : vector<64xi8> to vector<16xf32>
// CHECK: %[[SCALED:.*]] = arith.mulf %{{.*}}, %[[WB]] : vector<16xf32>
// CHECK: %[[BB:.*]] = vector.bitcast %{{.*}} : vector<64xi8> to vector<16xf32>
// CHECK: %[[Y:.*]] = arith.addf %[[SCALED]], %[[BB]] : vector<16xf32>
// CHECK: vector.store %[[Y]], %{{.*}} vector<16xf32>
func.func @layer_norm(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %g = kiln.weight #kiln.external<"w.bin", offset = 0, size = 256> -> !kiln.weight<64xf32>
  %b = kiln.weight #kiln.external<"w.bin", offset = 256, size = 256> -> !kiln.weight<64xf32>
  %y = kiln.layer_norm %x, %g, bias %b {epsilon = 1.0e-5 : f32} : tensor<?x64xf32>, !kiln.weight<64xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// A norm read by an int8 linear layer writes its row, then quantizes it
// while it is in L1 (the _q8 kernel) into the activation region the linear
// kernel reads; its f16 weight is widened in registers.
!q8_0 = !kiln.weight<64x64x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>>
// CHECK-LABEL: func.func @rms_norm_q8(
// CHECK: %[[Q8:.*]] = arith.constant 2048 : index
// CHECK: call @kiln_rms_norm_f16_64_eps0x1_0c6f7ap_20_q8(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[Q8]], %{{.*}}, %{{.*}})
// CHECK-NOT: call @kiln_quantize_q8
// CHECK: call @kiln_linear_q8_generic_q8_0_64x64(%{{.*}}, %[[Q8]],
// CHECK-LABEL: func.func private @kiln_rms_norm_f16_64_eps0x1_0c6f7ap_20_q8(
// CHECK: math.sqrt
// CHECK: %[[WH:.*]] = vector.bitcast %{{.*}} : vector<32xi8> to vector<16xf16>
// CHECK: %[[W:.*]] = arith.extf %[[WH]] : vector<16xf16> to vector<16xf32>
// CHECK: %[[Y:.*]] = arith.mulf %{{.*}}, %[[W]] : vector<16xf32>
// CHECK: vector.store %[[Y]], %[[OUT:.*]][%{{.*}}, %{{.*}}] : memref<?x64xf32, strided<[64, 1], offset: ?>>, vector<16xf32>
// Then each 32-value block of the row just written, as ggml's q8_1.
// CHECK: scf.for
// CHECK: vector.load %[[OUT]][%{{.*}}, %{{.*}}] : memref<?x64xf32, strided<[64, 1], offset: ?>>, vector<16xf32>
// CHECK: vector.reduction <maximumf>, %{{.*}} : vector<16xf32> into f32
// CHECK: math.roundeven %{{.*}} : vector<16xf32>
// CHECK: arith.trunci %{{.*}} : vector<16xi32> to vector<16xi8>
// CHECK: vector.store %{{.*}}, %{{.*}}[%{{.*}}] : memref<?xi8>, vector<32xi8>
// CHECK: arith.truncf %{{.*}} : f32 to f16
func.func @rms_norm_q8(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %g = kiln.weight #kiln.external<"w.bin", offset = 0, size = 128> -> !kiln.weight<64xf16>
  %w = kiln.weight #kiln.external<"w.bin", offset = 128, size = 4352> -> !q8_0
  %h = kiln.rms_norm %x, %g {epsilon = 1.0e-6 : f32} : tensor<?x64xf32>, !kiln.weight<64xf16> -> tensor<?x64xf32>
  %y = kiln.linear %h, %w : tensor<?x64xf32>, !q8_0 -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
