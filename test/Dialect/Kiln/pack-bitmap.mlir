// kiln-pack-weights{target=cpu} and Q4_0/Q8_0 weights pruned unstructured
// (kiln-prune's `kind = bitmap, dense = true`). unstructured=bitmap stores
// them bitmap compressed (WeightLayout.h, bitmapWeightBytes): bytes checked
// against a reference written from WeightLayout.h; the type then says how
// many codes are stored. By default (auto) the pass keeps them dense where
// the bitmap kernel measured slower than the dense one (everywhere so far:
// bitmapBeatsDense) and packs them as unpruned weights (rows16), the dense
// fallback, as unstructured=dense does.
// RUN: %python %S/Inputs/bitmap_reference.py make > %t.mlir
// RUN: kiln-opt %t.mlir --kiln-pack-weights=unstructured=bitmap | FileCheck %s --check-prefix=BITMAP
// RUN: kiln-opt %t.mlir --kiln-pack-weights=unstructured=bitmap | %python %S/Inputs/bitmap_reference.py check %t.mlir | FileCheck %s --check-prefix=BYTES
// The compressed blobs print and parse back.
// RUN: kiln-opt %t.mlir --kiln-pack-weights=unstructured=bitmap | kiln-opt | %python %S/Inputs/bitmap_reference.py check %t.mlir | FileCheck %s --check-prefix=BYTES
// RUN: kiln-opt %t.mlir --kiln-pack-weights | FileCheck %s --check-prefix=AUTO
// RUN: kiln-opt %t.mlir --kiln-pack-weights=unstructured=dense | FileCheck %s --check-prefix=AUTO
// RUN: not kiln-opt %t.mlir --kiln-pack-weights=unstructured=csr 2>&1 | FileCheck %s --check-prefix=OPTION

// BITMAP-LABEL: func.func @q4_0_unstructured
// BITMAP: kiln.weight dense_resource<q4_0_bitmap{{[_0-9]*}}> : tensor<1381xi8> -> !kiln.weight<32x96x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = bitmap, nnz = 1546>>
// BITMAP-LABEL: func.func @q8_0_unstructured
// BITMAP: kiln.weight dense_resource<q8_0_bitmap{{[_0-9]*}}> : tensor<1402xi8> -> !kiln.weight<16x128x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = bitmap, nnz = 994>>
// BITMAP-LABEL: func.func @q4_0_sparser
// BITMAP: kiln.weight dense_resource<q4_0_bitmap{{[_0-9]*}}> : tensor<352xi8> -> !kiln.weight<16x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = bitmap, nnz = 272>>
// BITMAP-NOT: _unstructured: "0x

// BYTES: q4_0_unstructured: 1381 bitmap bytes match, nnz 1546 (1728 dense)
// BYTES: q8_0_unstructured: 1402 bitmap bytes match, nnz 994 (2176 dense)
// BYTES: q4_0_sparser: 352 bitmap bytes match, nnz 272 (576 dense)

// AUTO-LABEL: func.func @q4_0_unstructured
// AUTO: kiln.weight dense_resource<q4_0_rows16{{[_0-9]*}}> : tensor<1792xi8> -> !kiln.weight<32x96x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_cpu.rows16>, sparsity = #kiln.sparsity<kind = bitmap, nnz = 1431, dense = true>>
// AUTO-LABEL: func.func @q8_0_unstructured
// AUTO: kiln.weight dense_resource<q8_0_rows16{{[_0-9]*}}> : tensor<2176xi8> -> !kiln.weight<16x128x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf, target_layout = #kiln_cpu.rows16>, sparsity = #kiln.sparsity<kind = bitmap, nnz = 994, dense = true>>
// AUTO-LABEL: func.func @q4_0_sparser
// AUTO: kiln.weight dense_resource<q4_0_rows16{{[_0-9]*}}> : tensor<576xi8> -> !kiln.weight<16x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_cpu.rows16>, sparsity = #kiln.sparsity<kind = bitmap, nnz = 237, dense = true>>

// OPTION: for the --unstructured option: Cannot find option named 'csr'!
