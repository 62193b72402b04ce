// RUN: split-file %s %t
// RUN: kiln-opt %t/gguf.mlir --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu=cpu=x86-64-v4 | FileCheck %t/gguf.mlir --check-prefixes=CHECK,V4 --implicit-check-not=llvm.x86.avx2
// RUN: kiln-opt %t/gguf.mlir --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu=cpu=x86-64-v3 | FileCheck %t/gguf.mlir --check-prefixes=CHECK,V3 --implicit-check-not=vpdpbusd
// RUN: kiln-opt %t/gguf.mlir --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu=cpu=generic | FileCheck %t/gguf.mlir --check-prefixes=CHECK,GENERIC --implicit-check-not=llvm.call_intrinsic
// RUN: kiln-opt %t/gguf.mlir --kiln-fuse=activation-bits=0 --kiln-plan-memory --convert-kiln-to-cpu=cpu=x86-64-v4 | FileCheck %t/gguf.mlir --check-prefix=F32 --implicit-check-not=llvm.call_intrinsic --implicit-check-not=kiln_quantize
// RUN: kiln-opt %t/rows16.mlir --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu=cpu=x86-64-v4 | FileCheck %t/rows16.mlir --check-prefixes=CHECK,V4 --implicit-check-not=llvm.x86.avx2
// RUN: kiln-opt %t/rows16.mlir --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu=cpu=x86-64-v3 | FileCheck %t/rows16.mlir --check-prefixes=CHECK,V3 --implicit-check-not=vpdpbusd
// RUN: kiln-opt %t/rows16.mlir --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu=cpu=generic | FileCheck %t/rows16.mlir --check-prefixes=CHECK,GENERIC --implicit-check-not=llvm.call_intrinsic

// The linear kernels' emitted IR for each instruction set: AVX-512 VNNI
// (x86-64-v4) multiplies bytes with vpdpbusd, AVX2 (x86-64-v3) with
// vpmaddubsw + vpmaddwd, generic with widened vector arithmetic; no
// variant may use another's intrinsics (--implicit-check-not). The gguf
// part also runs with f32 activations, which dequantize the weights into
// f32 vectors and need no intrinsics and no quantize kernel. (rows16
// weights refuse f32 activations: rows16.mlir.)

//--- gguf.mlir

!q4_0 = !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>

// CHECK-LABEL: func.func @linear_q4_0(
// CHECK: call @kiln_quantize_q8_64(
// CHECK-NEXT: call @kiln_barrier(
// V4: call @kiln_linear_q8_x86_64_v4_q4_0_64x64(
// V3: call @kiln_linear_q8_x86_64_v3_q4_0_64x64(
// GENERIC: call @kiln_linear_q8_generic_q4_0_64x64(

// Activations as ggml's q8_1 blocks: 32 codes of max|x|/127 steps, rounded
// half-even, then the f16-rounded scale.
// CHECK-LABEL: func.func private @kiln_quantize_q8_64(
// CHECK: vector.reduction <maximumf>, %{{.*}} : vector<16xf32> into f32
// CHECK: math.roundeven %{{.*}} : vector<16xf32>
// CHECK: arith.fptosi %{{.*}} : vector<16xf32> to vector<16xi32>
// CHECK: arith.trunci %{{.*}} : vector<16xi32> to vector<16xi8>
// CHECK: vector.store %{{.*}}, %{{.*}}[%{{.*}}] : memref<?xi8>, vector<32xi8>
// CHECK: arith.truncf %{{.*}} : f32 to f16

// Two 32-value blocks per step: the activation codes of both form one
// 64-byte operand, the signed weight codes become |w| with x negated where
// w < 0, and each block's eight quad sums are scaled into an 8-lane f32
// accumulator (ggml's x86 order).
// CHECK-LABEL: func.func private @kiln_linear_q8_{{.*}}_q4_0_64x64(
// CHECK-DAG: %[[ZERO:.*]] = arith.constant dense<0> : vector<64xi8>
// V3-DAG: %[[ONES:.*]] = arith.constant dense<1> : vector<16xi16>
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<8xf32>, f32,
// CHECK: vector.load %{{.*}}[%{{.*}}] : memref<?xi8>, vector<32xi8>
// CHECK: vector.shuffle %{{.*}}, %{{.*}} [0, 1, 2, {{.*}}, 63] : vector<32xi8>, vector<32xi8>
// Q4_0: low and high nibbles, minus 8.
// CHECK: arith.andi %{{.*}}, %{{.*}} : vector<16xi8>
// CHECK: arith.shrui %{{.*}}, %{{.*}} : vector<16xi8>
// CHECK: arith.subi %{{.*}}, %{{.*}} : vector<32xi8>
// CHECK: %[[ABS:.*]] = math.absi %[[CODES:.*]] : vector<64xi8>
// CHECK: %[[NEG:.*]] = arith.cmpi slt, %[[CODES]], %[[ZERO]] : vector<64xi8>
// CHECK: %[[MINUS:.*]] = arith.subi %[[ZERO]], %[[X:.*]] : vector<64xi8>
// CHECK: %[[SX:.*]] = arith.select %[[NEG]], %[[MINUS]], %[[X]] : vector<64xi1>, vector<64xi8>
// V4: %[[DOT:.*]] = llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"(%{{.*}}, %[[ABS]], %[[SX]]) : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
// V3: %[[U0:.*]] = vector.extract_strided_slice %[[ABS]] {offsets = [0], sizes = [32], strides = [1]} : vector<64xi8> to vector<32xi8>
// V3: %[[S0:.*]] = vector.extract_strided_slice %[[SX]] {offsets = [0], sizes = [32], strides = [1]} : vector<64xi8> to vector<32xi8>
// V3: %[[P0:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.ub.sw"(%[[U0]], %[[S0]]) : (vector<32xi8>, vector<32xi8>) -> vector<16xi16>
// V3: %[[Q0:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.wd"(%[[P0]], %[[ONES]]) : (vector<16xi16>, vector<16xi16>) -> vector<8xi32>
// V3: %[[U1:.*]] = vector.extract_strided_slice %[[ABS]] {offsets = [32], sizes = [32], strides = [1]} : vector<64xi8> to vector<32xi8>
// V3: %[[S1:.*]] = vector.extract_strided_slice %[[SX]] {offsets = [32], sizes = [32], strides = [1]} : vector<64xi8> to vector<32xi8>
// V3: %[[P1:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.ub.sw"(%[[U1]], %[[S1]]) : (vector<32xi8>, vector<32xi8>) -> vector<16xi16>
// V3: %[[Q1:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.wd"(%[[P1]], %[[ONES]]) : (vector<16xi16>, vector<16xi16>) -> vector<8xi32>
// V3: %[[DOT:.*]] = vector.shuffle %[[Q0]], %[[Q1]] [0, 1, 2, {{.*}}, 15] : vector<8xi32>, vector<8xi32>
// GENERIC: %[[WU:.*]] = arith.extui %[[ABS]] : vector<64xi8> to vector<64xi32>
// GENERIC: %[[WS:.*]] = arith.extsi %[[SX]] : vector<64xi8> to vector<64xi32>
// GENERIC: %[[PROD:.*]] = arith.muli %[[WU]], %[[WS]] : vector<64xi32>
// GENERIC: %[[L0:.*]] = vector.shuffle %[[PROD]], %[[PROD]] [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60] : vector<64xi32>, vector<64xi32>
// GENERIC: %[[L1:.*]] = vector.shuffle %[[PROD]], %[[PROD]] [1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45, 49, 53, 57, 61] : vector<64xi32>, vector<64xi32>
// GENERIC: %[[S01:.*]] = arith.addi %[[L0]], %[[L1]] : vector<16xi32>
// GENERIC: %[[L2:.*]] = vector.shuffle %[[PROD]], %[[PROD]] [2, 6, 10, 14, 18, 22, 26, 30, 34, 38, 42, 46, 50, 54, 58, 62] : vector<64xi32>, vector<64xi32>
// GENERIC: %[[S012:.*]] = arith.addi %[[S01]], %[[L2]] : vector<16xi32>
// GENERIC: %[[L3:.*]] = vector.shuffle %[[PROD]], %[[PROD]] [3, 7, 11, 15, 19, 23, 27, 31, 35, 39, 43, 47, 51, 55, 59, 63] : vector<64xi32>, vector<64xi32>
// GENERIC: %[[DOT:.*]] = arith.addi %[[S012]], %[[L3]] : vector<16xi32>
// CHECK: %[[FIRST:.*]] = vector.extract_strided_slice %[[DOT]] {offsets = [0], sizes = [8], strides = [1]} : vector<16xi32> to vector<8xi32>
// CHECK: %[[LANES:.*]] = arith.sitofp %[[FIRST]] : vector<8xi32> to vector<8xf32>
// CHECK: vector.fma %{{.*}}, %[[LANES]], %{{.*}} : vector<8xf32>
// CHECK: vector.extract_strided_slice %[[DOT]] {offsets = [8], sizes = [8], strides = [1]} : vector<16xi32> to vector<8xi32>
// CHECK: scf.yield
// ggml's hsum_float_8 of each accumulator.
// CHECK: arith.addf %{{.*}}, %{{.*}} : vector<4xf32>
// CHECK: arith.addf %{{.*}}, %{{.*}} : vector<2xf32>
// CHECK: memref.store %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}] : memref<?x64xf32, strided<[64, 1], offset: ?>>

// f32 activations: the same weights dequantized in registers (nibbles to
// f32, scale * code + (-8 * scale)) and multiplied by f32 activations in
// 16-lane FMAs, whatever the CPU option says.
// F32-LABEL: func.func @linear_q4_0(
// F32: call @kiln_linear_q4_0_64x64(
// F32-LABEL: func.func private @kiln_linear_q4_0_64x64(
// F32-DAG: %[[ZERO:.*]] = arith.constant dense<0.000000e+00> : vector<16xf32>
// F32-DAG: %[[MIN8:.*]] = arith.constant -8.000000e+00 : f32
// F32: scf.for {{.*}} iter_args(%{{.*}} = %[[ZERO]], {{.*}}) -> (vector<16xf32>,
// F32: %[[D:.*]] = arith.extf %{{.*}} : f16 to f32
// F32: %[[M:.*]] = arith.mulf %[[D]], %[[MIN8]] : f32
// F32: vector.load %{{.*}}[%{{.*}}] : memref<?xi8>, vector<16xi8>
// F32: %[[WF:.*]] = arith.uitofp %{{.*}} : vector<32xi8> to vector<32xf32>
// F32: %[[W0:.*]] = vector.extract_strided_slice %[[WF]] {offsets = [0], sizes = [16], strides = [1]} : vector<32xf32> to vector<16xf32>
// F32: %[[DV:.*]] = vector.broadcast %[[D]] : f32 to vector<16xf32>
// F32: %[[MV:.*]] = vector.broadcast %[[M]] : f32 to vector<16xf32>
// F32: %[[DQ:.*]] = vector.fma %[[W0]], %[[DV]], %[[MV]] : vector<16xf32>
// F32: %[[XV:.*]] = vector.load %{{.*}}[%{{.*}}, %{{.*}}] : memref<?x64xf32, strided<[64, 1], offset: ?>>, vector<16xf32>
// F32: vector.fma %[[XV]], %[[DQ]], %{{.*}} : vector<16xf32>
// F32: scf.yield {{.*}} : vector<16xf32>
// F32: vector.reduction <add>, %{{.*}} : vector<16xf32> into f32
// F32: memref.store
func.func @linear_q4_0(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 2304> -> !q4_0
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !q4_0 -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

//--- rows16.mlir

!q4_k = !kiln.weight<32x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf, target_layout = #kiln_cpu.rows16>>
!q8_0 = !kiln.weight<32x256x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf, target_layout = #kiln_cpu.rows16>>

// CHECK-LABEL: func.func @linear_q4_k(
// CHECK: call @kiln_quantize_q8_256(
// V4: call @kiln_linear_r16_x86_64_v4_q4_k_256x32(
// V3: call @kiln_linear_r16_x86_64_v3_q4_k_256x32(
// GENERIC: call @kiln_linear_r16_generic_q4_k_256x32(
func.func @linear_q4_k(%x: tensor<?x256xf32>) -> tensor<?x32xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 4736> -> !q4_k
  %y = kiln.linear %x, %w : tensor<?x256xf32>, !q4_k -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// CHECK-LABEL: func.func @linear_q8_0(
// CHECK: call @kiln_quantize_q8_256(
// V4: call @kiln_linear_r16_x86_64_v4_q8_0_256x32(
// V3: call @kiln_linear_r16_x86_64_v3_q8_0_256x32(
// GENERIC: call @kiln_linear_r16_generic_q8_0_256x32(
func.func @linear_q8_0(%x: tensor<?x256xf32>) -> tensor<?x32xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 4736, size = 8704> -> !q8_0
  %y = kiln.linear %x, %w : tensor<?x256xf32>, !q8_0 -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// rows16 Q4_K: one lane per row, so accumulators, scales and the result
// are vector<16xf32> (16 rows); codes come in 64-byte loads (4 codes of
// 16 rows), prefetched ahead, split into low and high nibbles; each
// activation quad is broadcast to all 16 rows.
// CHECK-LABEL: func.func private @kiln_linear_r16_{{.*}}_q4_k_256x32(
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<16xf32>,
// CHECK: %[[D:.*]] = arith.extf %{{.*}} : vector<16xf16> to vector<16xf32>
// CHECK: memref.prefetch %{{.*}}[%{{.*}}], read, locality<3>, data : memref<?xi8>
// CHECK: %[[CODES:.*]] = vector.load %{{.*}}[%{{.*}}] : memref<?xi8>, vector<64xi8>
// CHECK: %[[LO:.*]] = arith.andi %[[CODES]], %{{.*}} : vector<64xi8>
// CHECK: arith.shrui %[[CODES]], %{{.*}} : vector<64xi8>
// Q4_K's 6-bit sub-block scales and mins, one byte per row.
// CHECK: arith.extui %{{.*}} : vector<16xi8> to vector<16xi32>
// CHECK: %[[QUAD:.*]] = vector.broadcast %{{.*}} : i32 to vector<16xi32>
// CHECK: %[[X:.*]] = vector.bitcast %[[QUAD]] : vector<16xi32> to vector<64xi8>
// V4: %[[A0:.*]] = llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"(%{{.*}}, %[[LO]], %[[X]]) : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
// The next quad accumulates in the same vpdpbusd chain.
// V4: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"(%[[A0]], %{{.*}}, %{{.*}})
// AVX2: 4-bit codes times bytes of at most 127 leave room in i16 for four
// quads' pair sums: four vpmaddubsw are added in i16, then one vpmaddwd
// per half of the 16 rows.
// V3: %[[U0:.*]] = vector.extract_strided_slice %[[LO]] {offsets = [0], sizes = [32], strides = [1]} : vector<64xi8> to vector<32xi8>
// V3: %[[S0:.*]] = vector.extract_strided_slice %[[X]] {offsets = [0], sizes = [32], strides = [1]} : vector<64xi8> to vector<32xi8>
// V3: %[[P0:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.ub.sw"(%[[U0]], %[[S0]]) : (vector<32xi8>, vector<32xi8>) -> vector<16xi16>
// V3-NOT: pmadd.wd
// V3: %[[P1:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.ub.sw"
// V3-NEXT: %[[P01:.*]] = arith.addi %[[P0]], %[[P1]] : vector<16xi16>
// V3-NOT: pmadd.wd
// V3: %[[P2:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.ub.sw"
// V3-NEXT: %[[P012:.*]] = arith.addi %[[P01]], %[[P2]] : vector<16xi16>
// V3-NOT: pmadd.wd
// V3: %[[P3:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.ub.sw"
// V3-NEXT: %[[P0123:.*]] = arith.addi %[[P012]], %[[P3]] : vector<16xi16>
// V3-NEXT: %[[H0:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.wd"(%[[P0123]], %{{.*}}) : (vector<16xi16>, vector<16xi16>) -> vector<8xi32>
// V3-COUNT-4: llvm.call_intrinsic "llvm.x86.avx2.pmadd.ub.sw"
// V3: %[[H1:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.wd"
// V3-NEXT: vector.shuffle %[[H0]], %[[H1]] [0, 1, 2, {{.*}}, 15] : vector<8xi32>, vector<8xi32>
// GENERIC: %[[WU:.*]] = arith.extui %[[LO]] : vector<64xi8> to vector<64xi32>
// GENERIC: %[[WS:.*]] = arith.extsi %[[X]] : vector<64xi8> to vector<64xi32>
// GENERIC: arith.muli %[[WU]], %[[WS]] : vector<64xi32>
// GENERIC: vector.shuffle %{{.*}}, %{{.*}} [0, 4, 8, {{.*}}, 60] : vector<64xi32>, vector<64xi32>
// CHECK: %[[SUMF:.*]] = arith.sitofp %{{.*}} : vector<16xi32> to vector<16xf32>
// CHECK: %[[ACC:.*]] = vector.fma %[[SUMF]], %{{.*}}, %{{.*}} : vector<16xf32>
// The min term: -dmin * m times the activations' scaled code sum.
// CHECK: vector.fma %{{.*}}, %{{.*}}, %[[ACC]] : vector<16xf32>
// CHECK: scf.yield
// CHECK: vector.store %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}] : memref<?x32xf32, strided<[32, 1], offset: ?>>, vector<16xf32>

// rows16 Q8_0: eight 64-byte code loads per block; the codes are stored
// offset by 128, so each dot starts from -128 times the activation codes'
// sum. vpmaddubsw would saturate on 8-bit codes: x86-64-v3 splits each
// code into its nibbles, multiplies both, and vpmaddwd weighs their pair
// sums 1 and 16.
// CHECK-LABEL: func.func private @kiln_linear_r16_{{.*}}_q8_0_256x32(
// V3-DAG: %[[SIXTEEN:.*]] = arith.constant dense<16> : vector<16xi16>
// V3-DAG: %[[ONE:.*]] = arith.constant dense<1> : vector<16xi16>
// V3-DAG: %[[FOUR:.*]] = arith.constant dense<4> : vector<64xi8>
// V3-DAG: %[[NIBBLE:.*]] = arith.constant dense<15> : vector<64xi8>
// CHECK-DAG: %[[OFFSET:.*]] = arith.constant -128 : i32
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<16xf32>,
// CHECK-COUNT-8: vector.load %{{.*}}[%{{.*}}] : memref<?xi8>, vector<64xi8>
// V4-NOT: arith.shrui
// GENERIC-NOT: arith.shrui
// CHECK: %[[START:.*]] = arith.muli %{{.*}}, %[[OFFSET]] : i32
// CHECK: %[[STARTV:.*]] = vector.broadcast %[[START]] : i32 to vector<16xi32>
// V4: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"(%[[STARTV]], %{{.*}}, %{{.*}}) : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
// V3: %[[LOW:.*]] = arith.andi %{{.*}}, %[[NIBBLE]] : vector<64xi8>
// V3: %[[HIGH:.*]] = arith.shrui %{{.*}}, %[[FOUR]] : vector<64xi8>
// V3: %[[L0:.*]] = vector.extract_strided_slice %[[LOW]] {offsets = [0], sizes = [32], strides = [1]} : vector<64xi8> to vector<32xi8>
// V3: %[[PL:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.ub.sw"(%[[L0]], %{{.*}})
// V3: %[[QL:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.wd"(%[[PL]], %[[ONE]])
// V3: %[[H0:.*]] = vector.extract_strided_slice %[[HIGH]] {offsets = [0], sizes = [32], strides = [1]} : vector<64xi8> to vector<32xi8>
// V3: %[[PH:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.ub.sw"(%[[H0]], %{{.*}})
// V3: %[[QH:.*]] = llvm.call_intrinsic "llvm.x86.avx2.pmadd.wd"(%[[PH]], %[[SIXTEEN]])
// V3: arith.addi %[[QL]], %[[QH]] : vector<8xi32>
// V3: arith.addi %[[STARTV]], %{{.*}} : vector<16xi32>
// GENERIC: arith.extui %{{.*}} : vector<64xi8> to vector<64xi32>
// GENERIC: arith.addi %[[STARTV]], %{{.*}} : vector<16xi32>
// CHECK: vector.store %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}] : memref<?x32xf32, strided<[32, 1], offset: ?>>, vector<16xf32>
