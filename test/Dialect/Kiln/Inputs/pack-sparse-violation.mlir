// A weight marked 2:4 whose first run keeps 4 non-zeros: kiln-pack-weights
// refuses to compress it (pack-sparse.mlir).
!w = !kiln.weight<1x64x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4, dense = true>>
func.func @violation(%x: tensor<2x64xf32>) -> tensor<2x1xf32> {
  %w = kiln.weight dense_resource<not_pruned> : tensor<68xi8> -> !w
  %y = kiln.linear %x, %w : tensor<2x64xf32>, !w -> tensor<2x1xf32>
  return %y : tensor<2x1xf32>
}
{-#
  dialect_resources: {
    builtin: {
      not_pruned: "0x04000000003C0101010101010101010101010101010101010101010101010101010101010101003C0101010101010101010101010101010101010101010101010101010101010101"
    }
  }
#-}
