// kiln-pack-weights reads the weights it packs: a missing file is an error.
func.func @missing(%x: tensor<2x64xf32>) -> tensor<2x16xf32> {
  %w = kiln.weight #kiln.external<"does-not-exist.gguf", offset = 0, size = 576> -> !kiln.weight<16x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>
  %y = kiln.linear %x, %w : tensor<2x64xf32>, !kiln.weight<16x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>> -> tensor<2x16xf32>
  return %y : tensor<2x16xf32>
}
