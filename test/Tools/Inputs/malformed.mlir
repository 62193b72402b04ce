// Input of kiln-opt-errors.test: a return without its ':' (line 4, col 12).
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = kiln.silu %x : tensor<4xf32>
  return %y tensor<4xf32>
}
