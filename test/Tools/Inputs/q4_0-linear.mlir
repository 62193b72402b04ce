func.func @f(%x: tensor<?x256xf32>) -> tensor<?x32xf32> attributes {kiln.max_tokens = 4} {
  %w = kiln.weight #kiln.external<"weights.bin", offset = 0, size = 4608> -> !kiln.weight<32x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>
  %y = kiln.linear %x, %w : tensor<?x256xf32>, !kiln.weight<32x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}
