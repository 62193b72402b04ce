// Input of kiln-opt-errors.test: the file ends inside a function body.
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = kiln.silu %x : tensor<4xf32>
