//===- DistillLogits.cpp - kiln-distill end to end on soft logits ---------===//
//
// End-to-end distillation (Hinton et al.'s soft targets): the student's
// float weights and biases are fitted to the teacher's logits softened by a
// temperature T, minimizing
//   L = T^2 * mean over the inputs of KL(softmax(z_t / T) || softmax(z_s / T))
// by full-batch Adam, z the forward function's last result. A pruned weight
// keeps its zeros (its gradient is masked). Unlike the layer-wise fit, every
// layer moves for the network's output, so the errors that pile up through
// the layers are traded against each other where it matters.
//
// It interprets the forward function in float on the calibration inputs, so
// it is for models small enough to fit (the seed's classifier): the function
// must be a chain of kiln.linear (weight, optional bias) and kiln.relu over
// one input; any other op is a one-line error naming it.
//
//===----------------------------------------------------------------------===//

#include "Kiln/IR/WeightStore.h"
#include "Kiln/Transforms/Passes.h"
#include "Kiln/Transforms/RoundToNearest.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Threading.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/MemoryBuffer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

using namespace mlir;
using namespace mlir::kiln;

namespace {

/// A row-major matrix of activations: one row per calibration input.
struct Matrix {
  int64_t rows = 0, cols = 0;
  std::vector<float> values;
  Matrix() = default;
  Matrix(int64_t rows, int64_t cols)
      : rows(rows), cols(cols), values(size_t(rows) * cols, 0.0f) {}
  float *row(int64_t r) { return values.data() + r * cols; }
  const float *row(int64_t r) const { return values.data() + r * cols; }
};

/// Reads a 2-D little-endian f32 or f64 C-order .npy file (numpy's format,
/// versions 1-3) as f32 rows.
FailureOr<Matrix> readNpy(StringRef path, std::string &error) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer) {
    error = "cannot read " + path.str() + ": " + buffer.getError().message();
    return failure();
  }
  StringRef bytes = (*buffer)->getBuffer();
  auto fail = [&](const Twine &why) {
    error = (path + ": not a 2-D f32/f64 .npy array: " + why).str();
    return failure();
  };
  if (bytes.size() < 10 || !bytes.starts_with("\x93NUMPY"))
    return fail("no \\x93NUMPY magic");
  unsigned major = uint8_t(bytes[6]);
  size_t headerLength, headerStart;
  if (major == 1) {
    headerLength = uint8_t(bytes[8]) | uint8_t(bytes[9]) << 8;
    headerStart = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12)
      return fail("truncated header");
    headerLength = uint32_t(uint8_t(bytes[8])) |
                   uint32_t(uint8_t(bytes[9])) << 8 |
                   uint32_t(uint8_t(bytes[10])) << 16 |
                   uint32_t(uint8_t(bytes[11])) << 24;
    headerStart = 12;
  } else {
    return fail("format version " + Twine(major));
  }
  if (headerLength > bytes.size() - headerStart)
    return fail("truncated header");
  StringRef header = bytes.substr(headerStart, headerLength);
  StringRef data = bytes.drop_front(headerStart + headerLength);
  // The header is a Python dict literal; its three keys in any order.
  auto valueOf = [&](StringRef key) -> StringRef {
    size_t at = header.find(("'" + key + "'").str());
    if (at == StringRef::npos)
      return {};
    StringRef rest = header.drop_front(at + key.size() + 2).ltrim(" :");
    return rest;
  };
  StringRef descr = valueOf("descr");
  unsigned width;
  if (descr.starts_with("'<f4'"))
    width = 4;
  else if (descr.starts_with("'<f8'"))
    width = 8;
  else
    return fail("dtype " + descr.take_until([](char c) { return c == ','; }) +
                " (f32 or f64 wanted)");
  if (!valueOf("fortran_order").starts_with("False"))
    return fail("Fortran order");
  StringRef shape = valueOf("shape");
  if (!shape.consume_front("("))
    return fail("no shape");
  shape = shape.take_until([](char c) { return c == ')'; });
  SmallVector<StringRef> dims;
  shape.split(dims, ',', -1, /*KeepEmpty=*/false);
  int64_t rows = 0, cols = 0;
  if (dims.size() != 2 || dims[0].trim().getAsInteger(10, rows) ||
      dims[1].trim().getAsInteger(10, cols) || rows <= 0 || cols <= 0)
    return fail("shape (" + shape + ")");
  if (uint64_t(rows) * uint64_t(cols) > (uint64_t(1) << 31) ||
      data.size() != uint64_t(rows) * cols * width)
    return fail("the data holds " + Twine(data.size()) + " bytes, not " +
                Twine(rows) + " x " + Twine(cols) + " x " + Twine(width));
  Matrix m(rows, cols);
  for (int64_t i = 0; i < rows * cols; ++i) {
    double v;
    if (width == 4) {
      float f;
      std::memcpy(&f, data.data() + 4 * i, 4);
      v = f;
    } else {
      std::memcpy(&v, data.data() + 8 * i, 8);
    }
    if (!std::isfinite(v))
      return fail("value " + Twine(i) + " is not finite");
    m.values[i] = float(v);
  }
  return m;
}

/// out[r][n] = sum_k in[r][k] w[n][k] + bias[n]: rows in parallel.
void linearForward(MLIRContext *ctx, const Matrix &in, const float *w,
                   const float *bias, Matrix &out) {
  int64_t k = in.cols, n = out.cols;
  parallelFor(ctx, 0, size_t(in.rows), [&](size_t r) {
    const float *x = in.row(r);
    float *y = out.row(r);
    for (int64_t j = 0; j < n; ++j) {
      const float *wj = w + j * k;
      float sum = bias ? bias[j] : 0.0f;
      for (int64_t i = 0; i < k; ++i)
        sum += x[i] * wj[i];
      y[j] = sum;
    }
  });
}

/// A trained parameter: a float weight (a linear's weight or bias) of the
/// student, its mask (pruned weights) and Adam's moments.
struct Parameter {
  WeightOp op;
  std::vector<float> value, gradient, mask;
  std::vector<double> firstMoment, secondMoment;
};

/// The forward function as a list of steps over numbered values.
struct Chain {
  struct Step {
    bool linear = false; // else relu
    int input = 0, result = 0;
    int weight = -1, bias = -1; // parameters, for a linear
  };
  int64_t inputWidth = 0;
  SmallVector<Step> steps;
  int logits = 0, valueCount = 1; // value 0: the input
  std::vector<Parameter> parameters;
};

FailureOr<Chain> readChain(ModuleOp module, StringRef role) {
  func::FuncOp function;
  for (auto f : module.getOps<func::FuncOp>())
    if (!f.isExternal() && (!function || f.getName() == "forward"))
      function = f;
  if (!function)
    return module.emitError("distill: the ") << role
                                             << " has no function to run";
  if (function.getNumArguments() != 1 || function.getNumResults() == 0)
    return function.emitOpError("distill: end-to-end distillation runs a "
                                "function of one input and some results");
  auto inputType = dyn_cast<RankedTensorType>(function.getArgument(0).getType());
  if (!inputType || inputType.getRank() != 2 ||
      ShapedType::isDynamic(inputType.getDimSize(1)))
    return function.emitOpError("distill: end-to-end distillation needs an "
                                "input of shape [?, K]");
  Chain chain;
  chain.inputWidth = inputType.getDimSize(1);
  llvm::DenseMap<Value, int> numbers{{function.getArgument(0), 0}};
  llvm::DenseMap<Operation *, int> parameterOf;
  auto parameter = [&](Value v, Operation *user) -> FailureOr<int> {
    auto weight = v.getDefiningOp<WeightOp>();
    if (!weight)
      return user->emitOpError("distill: end-to-end distillation needs its "
                               "weights from kiln.weight ops");
    auto [it, inserted] =
        parameterOf.try_emplace(weight, int(chain.parameters.size()));
    if (!inserted)
      return it->second;
    WeightType type = weight.getType();
    if (!getFloatStorage(type))
      return weight.emitOpError("distill: end-to-end distillation needs "
                                "float weights (distil before kiln-quantize)");
    FailureOr<std::vector<float>> values = readFloatWeight(weight);
    if (failed(values))
      return failure();
    Parameter p;
    p.op = weight;
    p.value = std::move(*values);
    int64_t count = int64_t(p.value.size());
    // A pruned weight's zeros stay zeros; a dense one trains every value.
    p.mask.assign(count, 1.0f);
    if (type.getSparsity())
      for (int64_t i = 0; i < count; ++i)
        p.mask[i] = p.value[i] != 0.0f;
    p.gradient.assign(count, 0.0f);
    p.firstMoment.assign(count, 0.0);
    p.secondMoment.assign(count, 0.0);
    chain.parameters.push_back(std::move(p));
    return it->second;
  };
  auto numberOf = [&](Value v) -> int {
    auto it = numbers.find(v);
    return it == numbers.end() ? -1 : it->second;
  };
  for (Operation &op : function.getBody().front()) {
    if (isa<WeightOp>(op))
      continue;
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      chain.logits = numberOf(ret.getOperands().back());
      if (chain.logits < 0)
        return ret.emitOpError("distill: the last result is not computed by "
                               "the chain");
      continue;
    }
    Chain::Step step;
    Value input;
    if (auto linear = dyn_cast<LinearOp>(op)) {
      if (linear.getResidual() || linear.getRopePosition() ||
          linear.getActivationBits())
        return linear.emitOpError("distill: end-to-end distillation runs "
                                  "plain linear layers (no residual, rope or "
                                  "activation bits)");
      input = linear.getInput();
      step.linear = true;
      FailureOr<int> w = parameter(linear.getWeight(), linear);
      if (failed(w))
        return failure();
      step.weight = *w;
      if (linear.getBias()) {
        FailureOr<int> b = parameter(linear.getBias(), linear);
        if (failed(b))
          return failure();
        step.bias = *b;
      }
    } else if (auto relu = dyn_cast<ReluOp>(op)) {
      input = relu.getInput();
    } else {
      return op.emitOpError("distill: end-to-end distillation runs chains of "
                            "kiln.linear and kiln.relu; this op is not one");
    }
    step.input = numberOf(input);
    if (step.input < 0)
      return op.emitOpError("distill: its input is not computed by the chain");
    step.result = chain.valueCount++;
    numbers[op.getResult(0)] = step.result;
    chain.steps.push_back(step);
  }
  return chain;
}

/// Every value of the chain on `inputs` (value 0 the inputs themselves).
std::vector<Matrix> runForward(MLIRContext *ctx, const Chain &chain,
                               const Matrix &inputs) {
  std::vector<Matrix> values(chain.valueCount);
  values[0] = inputs;
  for (const Chain::Step &step : chain.steps) {
    const Matrix &in = values[step.input];
    if (!step.linear) {
      Matrix out = in;
      for (float &v : out.values)
        v = std::max(v, 0.0f);
      values[step.result] = std::move(out);
      continue;
    }
    const Parameter &w = chain.parameters[step.weight];
    int64_t n = int64_t(w.value.size()) / in.cols;
    Matrix out(in.rows, n);
    linearForward(ctx, in, w.value.data(),
                  step.bias >= 0 ? chain.parameters[step.bias].value.data()
                                 : nullptr,
                  out);
    values[step.result] = std::move(out);
  }
  return values;
}

/// softmax(z / T) of each row, in double.
std::vector<double> softened(const Matrix &z, double temperature) {
  std::vector<double> p(z.values.size());
  for (int64_t r = 0; r < z.rows; ++r) {
    const float *zr = z.row(r);
    double *pr = p.data() + r * z.cols;
    double top = *std::max_element(zr, zr + z.cols) / temperature, sum = 0;
    for (int64_t j = 0; j < z.cols; ++j)
      sum += pr[j] = std::exp(zr[j] / temperature - top);
    for (int64_t j = 0; j < z.cols; ++j)
      pr[j] /= sum;
  }
  return p;
}

/// T^2 * mean KL(teacher || student) of softened rows.
double distillationLoss(ArrayRef<double> teacher, ArrayRef<double> student,
                        int64_t rows, double temperature) {
  double total = 0;
  for (size_t i = 0; i < teacher.size(); ++i)
    if (teacher[i] > 0)
      total += teacher[i] *
               (std::log(teacher[i]) - std::log(std::max(student[i], 1e-300)));
  return temperature * temperature * total / double(rows);
}

/// The gradients of every parameter for dL/dz = `logitGradient`.
void runBackward(MLIRContext *ctx, Chain &chain,
                 const std::vector<Matrix> &values, Matrix logitGradient) {
  std::vector<Matrix> gradients(chain.valueCount);
  gradients[chain.logits] = std::move(logitGradient);
  for (Parameter &p : chain.parameters)
    std::fill(p.gradient.begin(), p.gradient.end(), 0.0f);
  for (const Chain::Step &step : llvm::reverse(chain.steps)) {
    Matrix &dy = gradients[step.result];
    if (dy.values.empty())
      continue; // Feeds no result the loss sees.
    const Matrix &in = values[step.input];
    Matrix &dx = gradients[step.input];
    // The inputs are not trained: no gradient flows into value 0.
    if (step.input != 0 && dx.values.empty())
      dx = Matrix(in.rows, in.cols);
    if (!step.linear) {
      for (size_t i = 0; i < dx.values.size(); ++i)
        if (in.values[i] > 0)
          dx.values[i] += dy.values[i];
      continue;
    }
    Parameter &w = chain.parameters[step.weight];
    int64_t k = in.cols, n = dy.cols;
    // dW[j][i] = sum_r dy[r][j] x[r][i]: output rows in parallel.
    parallelFor(ctx, 0, size_t(n), [&](size_t j) {
      float *g = w.gradient.data() + j * k;
      for (int64_t r = 0; r < in.rows; ++r) {
        float d = dy.row(r)[j];
        const float *x = in.row(r);
        for (int64_t i = 0; i < k; ++i)
          g[i] += d * x[i];
      }
    });
    if (step.bias >= 0) {
      Parameter &b = chain.parameters[step.bias];
      for (int64_t r = 0; r < dy.rows; ++r)
        for (int64_t j = 0; j < n; ++j)
          b.gradient[j] += dy.row(r)[j];
    }
    if (step.input == 0)
      continue;
    // dx[r] += dy[r] W.
    parallelFor(ctx, 0, size_t(in.rows), [&](size_t r) {
      const float *d = dy.row(r);
      float *out = dx.row(r);
      for (int64_t j = 0; j < n; ++j) {
        const float *wj = w.value.data() + j * k;
        for (int64_t i = 0; i < k; ++i)
          out[i] += d[j] * wj[i];
      }
    });
  }
}

} // namespace

LogicalResult
mlir::kiln::distillLogits(ModuleOp module, ModuleOp teacher,
                          const LogitDistillationOptions &options) {
  auto positive = [&](StringRef name, double value) -> LogicalResult {
    if (value > 0 && std::isfinite(value))
      return success();
    char number[32];
    std::snprintf(number, sizeof(number), "%g", value);
    return module.emitError("distill: ")
           << name << "=" << number << " must be a positive number";
  };
  if (failed(positive("temperature", options.temperature)) ||
      failed(positive("learning-rate", options.learningRate)))
    return failure();
  if (options.steps == 0)
    return module.emitError("distill: steps must be at least 1");
  std::string error;
  FailureOr<Matrix> inputs = readNpy(options.inputs, error);
  if (failed(inputs))
    return module.emitError("distill: ") << error;
  FailureOr<Chain> student = readChain(module, "student");
  if (failed(student))
    return failure();
  FailureOr<Chain> reference = readChain(teacher, "teacher");
  if (failed(reference))
    return failure();
  if (inputs->cols != student->inputWidth ||
      inputs->cols != reference->inputWidth)
    return module.emitError("distill: ")
           << options.inputs << " holds rows of " << inputs->cols
           << " values; the student and teacher take " << student->inputWidth
           << " and " << reference->inputWidth;
  MLIRContext *ctx = module.getContext();
  const double t = options.temperature;
  std::vector<Matrix> teacherValues = runForward(ctx, *reference, *inputs);
  const Matrix &teacherLogits = teacherValues[reference->logits];
  std::vector<double> target = softened(teacherLogits, t);

  std::vector<Matrix> values = runForward(ctx, *student, *inputs);
  if (values[student->logits].cols != teacherLogits.cols)
    return module.emitError("distill: the student's logits are ")
           << values[student->logits].cols << " wide, the teacher's "
           << teacherLogits.cols;
  const int64_t rows = inputs->rows, classes = teacherLogits.cols;
  const double before = distillationLoss(
      target, softened(values[student->logits], t), rows, t);
  // Adam (Kingma and Ba's defaults for the moments).
  constexpr double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8;
  for (unsigned step = 1; step <= options.steps; ++step) {
    if (step > 1)
      values = runForward(ctx, *student, *inputs);
    std::vector<double> p = softened(values[student->logits], t);
    // dL/dz = T (p_student - p_teacher) / rows.
    Matrix dz(rows, classes);
    for (size_t i = 0; i < dz.values.size(); ++i)
      dz.values[i] = float(t * (p[i] - target[i]) / double(rows));
    runBackward(ctx, *student, values, std::move(dz));
    double correction1 = 1 - std::pow(beta1, step),
           correction2 = 1 - std::pow(beta2, step);
    for (Parameter &q : student->parameters)
      for (size_t i = 0; i < q.value.size(); ++i) {
        double g = double(q.gradient[i]) * q.mask[i];
        q.firstMoment[i] = beta1 * q.firstMoment[i] + (1 - beta1) * g;
        q.secondMoment[i] = beta2 * q.secondMoment[i] + (1 - beta2) * g * g;
        q.value[i] -= float(options.learningRate *
                            (q.firstMoment[i] / correction1) /
                            (std::sqrt(q.secondMoment[i] / correction2) +
                             epsilon));
      }
  }
  values = runForward(ctx, *student, *inputs);
  const double after = distillationLoss(
      target, softened(values[student->logits], t), rows, t);
  for (Parameter &q : student->parameters)
    replaceFloatWeight(q.op, q.value);
  char message[160];
  std::snprintf(message, sizeof(message),
                "distill: soft-logit loss (T = %g, %lld inputs) %.6g -> "
                "%.6g after %u steps",
                t, (long long)rows, before, after, options.steps);
  // On the location, not the op: the remark needs no dump of the module.
  emitRemark(module.getLoc(), message);
  return success();
}
