// kiln-pack-weights{target=cpu} and Kiln's packed layout: every width 2..8,
// groups of 32 to 128, f16/bf16/f32 scales, symmetric and with float zeros,
// go to #kiln_cpu.rows16 (the int8 kernels'); bytes checked against a
// reference written from Rows16.h.
// RUN: %python %S/Inputs/packed_rows16_reference.py make > %t.mlir
// RUN: kiln-opt %t.mlir --kiln-pack-weights=target=cpu | FileCheck %s
// RUN: kiln-opt %t.mlir --kiln-pack-weights=target=cpu | %python %S/Inputs/packed_rows16_reference.py check %t.mlir | FileCheck %s --check-prefix=BYTES
// The rows16 blobs print and parse back.
// RUN: kiln-opt %t.mlir --kiln-pack-weights=target=cpu | kiln-opt | %python %S/Inputs/packed_rows16_reference.py check %t.mlir | FileCheck %s --check-prefix=BYTES

// CHECK-LABEL: func.func @p2g32_f16
// CHECK: kiln.weight dense_resource<p2g32_rows16{{[_0-9]*}}> : tensor<640xi8> -> !kiln.weight<32x64x#kiln.quant<bits = 2, group = 32, scale = f16, target_layout = #kiln_cpu.rows16>>
// CHECK-LABEL: func.func @p3g32_f32_zf32
// CHECK: kiln.weight dense_resource<p3g32_rows16{{[_0-9]*}}> : tensor<960xi8> -> !kiln.weight<16x96x#kiln.quant<bits = 3, group = 32, scale = f32, zero = f32, target_layout = #kiln_cpu.rows16>>
// CHECK-LABEL: func.func @p7g64_bf16_zf16
// CHECK: kiln.weight dense_resource<p7g64_rows16{{[_0-9]*}}> : tensor<3840xi8> -> !kiln.weight<32x128x#kiln.quant<bits = 7, group = 64, scale = bf16, zero = f16, target_layout = #kiln_cpu.rows16>>

// BYTES: p2g32_f16: 640 rows16 bytes match
// BYTES: p2g64_bf16_zf16: {{[0-9]+}} rows16 bytes match
// BYTES: p3g32_f32_zf32: {{[0-9]+}} rows16 bytes match
// BYTES: p3g128_bf16_zbf16: {{[0-9]+}} rows16 bytes match
// BYTES: p4g64_f16_zbf16: {{[0-9]+}} rows16 bytes match
// BYTES: p5g32_bf16: {{[0-9]+}} rows16 bytes match
// BYTES: p5g64_f16_zf32: {{[0-9]+}} rows16 bytes match
// BYTES: p6g32_f32: {{[0-9]+}} rows16 bytes match
// BYTES: p6g128_f16_zf16: {{[0-9]+}} rows16 bytes match
// BYTES: p7g32_f16: {{[0-9]+}} rows16 bytes match
// BYTES: p7g64_bf16_zf16: {{[0-9]+}} rows16 bytes match
// BYTES: p8g32_bf16_zbf16: {{[0-9]+}} rows16 bytes match
