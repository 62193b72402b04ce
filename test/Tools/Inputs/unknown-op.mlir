// Input of kiln-opt-errors.test: an op the kiln dialect does not define.
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = kiln.frobnicate %x : tensor<4xf32>
  return %y : tensor<4xf32>
}
