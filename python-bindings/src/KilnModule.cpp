//===- KilnModule.cpp - nanobind extension kiln._kiln over kiln-c ---------===//
//
// A thin layer over include/kiln-c/Kiln.h: every call goes through the C API
// (DESIGN.md: the bindings never reach past it). Errors become
// kiln._kiln.KilnError; long calls release the GIL and take it back only to
// run Python callbacks.
//
//===----------------------------------------------------------------------===//

#include "kiln-c/Kiln.h"

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace nb = nanobind;

namespace {

nb::object kilnError;

[[noreturn]] void raise(const char *err) {
  PyErr_SetString(kilnError.ptr(), err ? err : "unknown error");
  throw nb::python_error();
}

void check(int status, const char *err) {
  if (status != KILN_OK)
    raise(err);
}

/// Runs a Python callable from a C callback (the GIL is released around the
/// C call; the caller holds it again here); the first exception it raises is
/// kept and re-raised afterwards, and stops the work where the C API allows.
struct Callback {
  nb::object fn;
  std::optional<nb::python_error> error;

  /// Returns true when the work should stop: the callable returned a true
  /// value or raised.
  bool call(nb::handle arg0, nb::handle arg1 = nb::handle()) {
    if (error)
      return true;
    try {
      nb::object r = arg1 ? fn(arg0, arg1) : fn(arg0);
      return PyObject_IsTrue(r.ptr()) == 1;
    } catch (nb::python_error &e) {
      error.emplace(std::move(e));
      return true;
    }
  }
  void rethrow() {
    if (error) {
      nb::python_error e = std::move(*error);
      error.reset();
      throw e;
    }
  }
};

void compile(const std::string &input, const std::string &output,
             const std::vector<std::pair<std::string, std::string>> &options,
             nb::object progress) {
  kiln_compile_options *opts = nullptr;
  const char *err = nullptr;
  check(kiln_compile_options_create(&opts, &err), err);
  std::unique_ptr<kiln_compile_options, void (*)(kiln_compile_options *)> own(
      opts, kiln_compile_options_free);
  for (const auto &[key, value] : options)
    check(kiln_compile_options_set(opts, key.c_str(), value.c_str(), &err),
          err);
  Callback cb{progress};
  kiln_progress_callback trampoline = nullptr;
  if (!progress.is_none())
    trampoline = [](const char *stage, double fraction, void *user) {
      auto *c = static_cast<Callback *>(user);
      nb::gil_scoped_acquire gil;
      c->call(nb::str(stage), nb::float_(fraction));
    };
  int status;
  {
    nb::gil_scoped_release release;
    status = kiln_compile(input.c_str(), output.c_str(), opts, trampoline, &cb,
                          &err);
  }
  cb.rethrow();
  check(status, err);
}

/// A loaded artifact and one session (KV cache) for its calls.
class Model {
public:
  Model(const std::string &path, int32_t threads,
        std::optional<std::string> device) {
    const char *err = nullptr;
    int status;
    {
      nb::gil_scoped_release release;
      status = kiln_model_load_on(path.c_str(), threads,
                                  device ? device->c_str() : nullptr, &model,
                                  &err);
    }
    check(status, err);
  }
  ~Model() { close(); }
  void close() {
    if (session)
      kiln_session_free(session);
    if (model)
      kiln_model_free(model);
    session = nullptr;
    model = nullptr;
  }

  kiln_model *get() const {
    if (!model)
      raise("the model is closed");
    return model;
  }
  kiln_session *getSession() {
    if (!session) {
      const char *err = nullptr;
      check(kiln_session_create(get(), 0, &session, &err), err);
    }
    return session;
  }

  int32_t nVocab() const { return kiln_model_n_vocab(get()); }
  int32_t nCtx() const { return kiln_model_n_ctx(get()); }
  std::string hostVariant() const { return kiln_model_host_variant(get()); }
  std::string device() const { return kiln_model_device(get()); }

  nb::dict defaultParams() const {
    kiln_generate_params p;
    kiln_model_default_params(get(), &p);
    nb::dict d;
    d["temperature"] = p.sampling.temperature;
    d["top_k"] = p.sampling.top_k;
    d["top_p"] = p.sampling.top_p;
    d["min_p"] = p.sampling.min_p;
    d["repeat_penalty"] = p.sampling.repeat_penalty;
    d["repeat_last_n"] = p.sampling.repeat_last_n;
    return d;
  }

  std::vector<int32_t> tokenize(const std::string &text, bool addSpecial,
                                bool parseSpecial) const {
    std::vector<int32_t> ids(text.size() + 8);
    size_t n = 0;
    const char *err = nullptr;
    check(kiln_tokenize(get(), text.c_str(), addSpecial, parseSpecial,
                        ids.data(), ids.size(), &n, &err),
          err);
    if (n > ids.size()) {
      ids.resize(n);
      check(kiln_tokenize(get(), text.c_str(), addSpecial, parseSpecial,
                          ids.data(), ids.size(), &n, &err),
            err);
    }
    ids.resize(n);
    return ids;
  }

  nb::bytes detokenize(const std::vector<int32_t> &ids) const {
    std::string out;
    int32_t vocab = nVocab();
    for (int32_t id : ids) {
      if (id < 0 || id >= vocab)
        raise(("token id " + std::to_string(id) + " is outside [0, " +
               std::to_string(vocab) + ")")
                  .c_str());
      size_t size = 0;
      const char *piece = kiln_token_to_piece(get(), id, &size);
      out.append(piece, size);
    }
    return nb::bytes(out.data(), out.size());
  }

  nb::ndarray<nb::numpy, float, nb::ndim<2>>
  logits(const std::vector<int32_t> &tokens, int32_t rows) {
    if (tokens.empty())
      raise("logits: the token list is empty");
    kiln_session *s = getSession();
    const char *err = nullptr;
    int status;
    {
      nb::gil_scoped_release release;
      kiln_session_reset(s);
      status = kiln_eval(s, tokens.data(), tokens.size(), rows, &err);
    }
    check(status, err);
    int32_t n = 0;
    const float *data = kiln_logits(s, &n);
    size_t vocab = size_t(nVocab());
    auto *copy = new float[size_t(n) * vocab];
    std::memcpy(copy, data, sizeof(float) * size_t(n) * vocab);
    nb::capsule owner(
        copy, [](void *p) noexcept { delete[] static_cast<float *>(p); });
    return nb::ndarray<nb::numpy, float, nb::ndim<2>>(copy, {size_t(n), vocab},
                                                      owner);
  }

  /// An encoder's sentence embeddings of `texts`, [len(texts), n_embd].
  nb::ndarray<nb::numpy, float, nb::ndim<2>>
  embed(const std::vector<std::string> &texts) {
    kiln_session *s = getSession();
    size_t width = size_t(kiln_model_n_embd(get()));
    auto *out = new float[std::max<size_t>(texts.size(), 1) * width];
    nb::capsule owner(
        out, [](void *p) noexcept { delete[] static_cast<float *>(p); });
    for (size_t i = 0; i < texts.size(); ++i) {
      const char *err = nullptr;
      int status;
      {
        nb::gil_scoped_release release;
        status = kiln_embed(s, texts[i].c_str(), out + i * width, width, &err);
      }
      check(status, err);
    }
    return nb::ndarray<nb::numpy, float, nb::ndim<2>>(
        out, {texts.size(), width}, owner);
  }

  nb::dict generate(const std::string &prompt, int32_t maxTokens,
                    float temperature, int32_t topK, float topP, float minP,
                    float repeatPenalty, uint64_t seed, bool chat,
                    nb::object onPiece) {
    kiln_generate_params p;
    kiln_model_default_params(get(), &p);
    p.sampling.temperature = temperature;
    p.sampling.top_k = topK;
    p.sampling.top_p = topP;
    p.sampling.min_p = minP;
    p.sampling.repeat_penalty = repeatPenalty;
    p.sampling.seed = seed;
    p.n_predict = maxTokens;
    p.chat = chat;
    kiln_session *s = getSession();
    Callback cb{onPiece};
    kiln_generate_stats stats{};
    const char *err = nullptr;
    int status;
    {
      nb::gil_scoped_release release;
      kiln_session_reset(s);
      status = kiln_generate(
          s, prompt.c_str(), &p,
          [](const char *piece, size_t size, void *user) -> int {
            auto *c = static_cast<Callback *>(user);
            nb::gil_scoped_acquire gil;
            return c->call(nb::bytes(piece, size)) ? 1 : 0;
          },
          &cb, &stats, &err);
    }
    cb.rethrow();
    check(status, err);
    nb::dict d;
    d["n_prompt"] = stats.n_prompt;
    d["n_generated"] = stats.n_generated;
    d["prompt_seconds"] = stats.prompt_seconds;
    d["generate_seconds"] = stats.generate_seconds;
    d["stopped_at_eog"] = bool(stats.stopped_at_eog);
    return d;
  }

private:
  kiln_model *model = nullptr;
  kiln_session *session = nullptr;
};

/// A module compiled by kiln_compile_mlir_weights: with weights, it holds
/// them packed for its kernels and its calls take none.
class MlirModule {
public:
  MlirModule(const std::string &text, const std::string &pipeline,
             nb::object weights) {
    nb::ndarray<nb::ro, uint8_t, nb::ndim<1>, nb::c_contig> weightBytes;
    if (!weights.is_none() &&
        !nb::try_cast(weights, weightBytes, /*convert=*/false))
      raise("weights must be a contiguous 1-D numpy array of uint8");
    // A zero-sized array may have no data pointer; the C API tells "no
    // weights" by NULL.
    static const uint8_t none = 0;
    const void *wdata = weights.is_none()        ? nullptr
                        : weightBytes.shape(0) ? weightBytes.data()
                                               : &none;
    size_t wsize = weights.is_none() ? 0 : weightBytes.shape(0);
    const char *err = nullptr;
    int status;
    {
      nb::gil_scoped_release release;
      status = kiln_compile_mlir_weights(text.data(), text.size(),
                                         pipeline.c_str(), wdata, wsize,
                                         &module, &err);
    }
    check(status, err);
  }
  ~MlirModule() { kiln_mlir_module_free(module); }

  std::vector<std::string> functions() const {
    std::vector<std::string> names;
    for (int32_t i = 0, e = kiln_mlir_module_num_functions(module); i < e; ++i)
      names.push_back(kiln_mlir_module_function_name(module, i));
    return names;
  }

  int32_t lookup(const std::string &name) const {
    int32_t index = -1;
    const char *err = nullptr;
    check(kiln_mlir_module_lookup(module, name.c_str(), &index, &err), err);
    return index;
  }

  /// [(name, kind, dtype, shape)] with kind "tensor", "result", "bytes",
  /// "integer" and shape entries None where dynamic.
  nb::list signature(const std::string &name) const {
    static const char *kinds[] = {"tensor", "result", "bytes", "integer"};
    static const char *dtypes[] = {"float32", "float16", "bfloat16",
                                   "float64", "int8",    "int16",
                                   "int32",   "int64",   "uint8"};
    int32_t fn = lookup(name);
    nb::list out;
    for (int32_t i = 0, e = kiln_function_num_args(module, fn); i < e; ++i) {
      kiln_arg_info info;
      const char *err = nullptr;
      check(kiln_function_arg(module, fn, i, &info, &err), err);
      nb::list shape;
      for (int32_t r = 0; r < info.rank; ++r)
        shape.append(info.shape[r] < 0 ? nb::object(nb::none())
                                       : nb::object(nb::int_(info.shape[r])));
      out.append(nb::make_tuple(info.name, kinds[info.kind], dtypes[info.dtype],
                                nb::tuple(shape)));
    }
    return out;
  }

  int64_t maxTokens(const std::string &name) const {
    return kiln_function_max_tokens(module, lookup(name));
  }
  int64_t scratchBytes(const std::string &name) const {
    return kiln_function_scratch_bytes(module, lookup(name));
  }

  void call(const std::string &name, nb::list args, nb::object weights,
            int32_t threads) {
    int32_t fn = lookup(name);
    size_t n = nb::len(args);
    std::vector<kiln_buffer> buffers(n);
    std::vector<nb::ndarray<nb::ro>> arrays(n);
    std::vector<std::vector<int64_t>> shapes(n), strides(n);
    for (size_t i = 0; i < n; ++i) {
      nb::handle a = args[i];
      kiln_buffer &b = buffers[i];
      b = kiln_buffer{};
      if (nb::isinstance<nb::int_>(a)) {
        b.scalar = nb::cast<int64_t>(a);
        continue;
      }
      if (!nb::try_cast(a, arrays[i], /*convert=*/false))
        raise(("argument " + std::to_string(i) +
               " is neither an integer nor a numpy array")
                  .c_str());
      const nb::ndarray<nb::ro> &arr = arrays[i];
      if (arr.device_type() != nb::device::cpu::value)
        raise("arrays must be in CPU memory");
      b.data = const_cast<void *>(arr.data());
      b.dtype = dtypeCode(arr.dtype());
      b.rank = int32_t(arr.ndim());
      for (size_t r = 0; r < arr.ndim(); ++r) {
        shapes[i].push_back(int64_t(arr.shape(r)));
        strides[i].push_back(int64_t(arr.stride(r)));
      }
      b.shape = shapes[i].data();
      b.strides = strides[i].data();
    }
    nb::ndarray<nb::ro, uint8_t, nb::ndim<1>, nb::c_contig> weightBytes;
    if (!weights.is_none() &&
        !nb::try_cast(weights, weightBytes, /*convert=*/false))
      raise("weights must be a contiguous 1-D numpy array of uint8");
    const void *wdata = weights.is_none() ? nullptr : weightBytes.data();
    size_t wsize = weights.is_none() ? 0 : weightBytes.shape(0);
    const char *err = nullptr;
    int status;
    {
      nb::gil_scoped_release release;
      status = kiln_function_call(module, fn, buffers.data(), n, wdata, wsize,
                                  threads, &err);
    }
    check(status, err);
  }

private:
  static int32_t dtypeCode(nb::dlpack::dtype t) {
    using nb::dlpack::dtype_code;
    auto code = dtype_code(t.code);
    if (t.lanes != 1)
      return -1;
    if (code == dtype_code::Float)
      return t.bits == 32   ? KILN_DTYPE_F32
             : t.bits == 16 ? KILN_DTYPE_F16
             : t.bits == 64 ? KILN_DTYPE_F64
                            : -1;
    if (code == dtype_code::Bfloat && t.bits == 16)
      return KILN_DTYPE_BF16;
    if (code == dtype_code::Int)
      return t.bits == 8    ? KILN_DTYPE_I8
             : t.bits == 16 ? KILN_DTYPE_I16
             : t.bits == 32 ? KILN_DTYPE_I32
             : t.bits == 64 ? KILN_DTYPE_I64
                            : -1;
    if (code == dtype_code::UInt && t.bits == 8)
      return KILN_DTYPE_U8;
    return -1;
  }

  kiln_mlir_module *module = nullptr;
};

} // namespace

NB_MODULE(_kiln, m) {
  m.doc() = "Kiln's C API (include/kiln-c/Kiln.h); use the `kiln` package.";
  kilnError = nb::steal(PyErr_NewExceptionWithDoc("kiln._kiln.KilnError",
                                                  "An error reported by Kiln.",
                                                  PyExc_RuntimeError, nullptr));
  m.attr("KilnError") = kilnError;
  m.attr("API_VERSION") = kiln_capi_version();

  m.def("compile", &compile, nb::arg("input"), nb::arg("output"),
        nb::arg("options"), nb::arg("progress").none());

  nb::class_<Model>(m, "Model")
      .def(nb::init<const std::string &, int32_t, std::optional<std::string>>(),
           nb::arg("path"), nb::arg("threads"), nb::arg("device").none())
      .def("close", &Model::close)
      .def_prop_ro("n_vocab", &Model::nVocab)
      .def_prop_ro("n_ctx", &Model::nCtx)
      .def_prop_ro("host_variant", &Model::hostVariant)
      .def_prop_ro("device", &Model::device)
      .def("default_params", &Model::defaultParams)
      .def("tokenize", &Model::tokenize, nb::arg("text"),
           nb::arg("add_special"), nb::arg("parse_special"))
      .def("detokenize", &Model::detokenize, nb::arg("ids"))
      .def("logits", &Model::logits, nb::arg("tokens"), nb::arg("rows"))
      .def("embed", &Model::embed, nb::arg("texts"))
      .def("generate", &Model::generate, nb::arg("prompt"),
           nb::arg("max_tokens"), nb::arg("temperature"), nb::arg("top_k"),
           nb::arg("top_p"), nb::arg("min_p"), nb::arg("repeat_penalty"),
           nb::arg("seed"), nb::arg("chat"), nb::arg("on_piece"));

  nb::class_<MlirModule>(m, "MlirModule")
      .def(nb::init<const std::string &, const std::string &, nb::object>(),
           nb::arg("text"), nb::arg("pipeline"), nb::arg("weights").none())
      .def("functions", &MlirModule::functions)
      .def("signature", &MlirModule::signature, nb::arg("name"))
      .def("max_tokens", &MlirModule::maxTokens, nb::arg("name"))
      .def("scratch_bytes", &MlirModule::scratchBytes, nb::arg("name"))
      .def("call", &MlirModule::call, nb::arg("name"), nb::arg("args"),
           nb::arg("weights").none(), nb::arg("threads"));
}
