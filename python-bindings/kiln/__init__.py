"""Kiln from Python: compile transformer models and MLIR functions, run them.

    import kiln
    model = kiln.compile("model.gguf", threads=2)
    print(model.generate("The capital of France is", max_tokens=16, temperature=0))

Everything goes through Kiln's C API (include/kiln-c/Kiln.h) in the
extension ``kiln._kiln``. Errors are raised as :class:`KilnError`. Loading an
artifact runs the native code inside it: load only artifacts you trust.
"""

from __future__ import annotations

import codecs
import os
import queue
import shutil
import sys
import tempfile
import threading
from typing import Callable, Iterator, Optional, Sequence, Union

import numpy as np

from . import _kiln
from ._kiln import KilnError

__all__ = ["KilnError", "Model", "Function", "compile", "load", "compile_mlir"]

PathLike = Union[str, "os.PathLike[str]"]


def _progress_printer(input_path: str) -> Optional[Callable[[str, float], None]]:
    """A tqdm bar on a terminal; nothing otherwise (or without tqdm)."""
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    name = os.path.basename(input_path)
    bar = tqdm(total=100, desc=name, bar_format="{desc} {percentage:3.0f}%|{bar}|", leave=False)

    def update(stage: str, fraction: float) -> None:
        bar.n = int(round(fraction * 100))
        bar.set_description_str("%s: %-26s" % (name, stage[:26]), refresh=False)
        bar.refresh()
        if fraction >= 1.0:
            bar.close()

    return update


def _option_text(value: object) -> str:
    if isinstance(value, bool):
        raise KilnError("compile options take strings or integers, not booleans")
    return str(value)


def compile(model_path: PathLike, *, threads: int = 2, output: Optional[PathLike] = None,
            progress: Union[bool, Callable[[str, float], None], None] = None,
            device: Optional[str] = None, **options: object) -> "Model":
    """Compiles a .gguf model to a .kiln artifact and loads it.

    Options (each is passed to the C API, which rejects unknown ones):
    ``target="cpu"``, ``activations="int8"|"f32"`` (or ``"int2"``..``"int7"``:
    narrower codes, the same kernels), ``ctx`` (context length,
    0 = min(model, 4096)), ``max_tokens`` (tokens per forward step),
    ``quantize`` (kiln-compile's --quantize value: round the float weights of
    linear layers to nearest, e.g. ``"bits=4,group=32"``), ``prune``
    (kiln-compile's --prune value, applied first: zero the least important
    weights of linear layers, e.g. ``"pattern=nm,n=2,m=4"``).
    ``output`` keeps the artifact at that path; otherwise it lives in a
    temporary file until the model is closed (see :meth:`Model.save`).
    ``progress``: a callable (stage, fraction), False for none; by default a
    tqdm bar when stderr is a terminal. ``device``: as for :func:`load`.
    """
    model_path = os.fspath(model_path)
    pairs = [(key, _option_text(value)) for key, value in options.items()]
    tmpdir = None
    if output is None:
        tmpdir = tempfile.mkdtemp(prefix="kiln-")
        out = os.path.join(tmpdir, "model.kiln")
    else:
        out = os.fspath(output)
    if progress is None or progress is True:
        callback = _progress_printer(model_path)
    else:
        callback = progress or None
    try:
        _kiln.compile(model_path, out, pairs, callback)
        model = Model(out, threads=threads, device=device)
    except BaseException:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    model._tmpdir = tmpdir
    return model


def load(path: PathLike, threads: int = 2, device: Optional[str] = None) -> "Model":
    """Loads (and verifies) a .kiln artifact. ``device``: "cpu", "cuda" (GPU
    0), "cuda:N", or None for $KILN_DEVICE when set, else the first of the
    artifact's targets this machine can run (``kiln-run --device``)."""
    return Model(os.fspath(path), threads=threads, device=device)


class Model:
    """A compiled model: tokenizer, generation and logits."""

    def __init__(self, path: str, threads: int = 2, device: Optional[str] = None):
        self._tmpdir: Optional[str] = None
        if not os.path.exists(path):
            raise KilnError("%s: no such file" % path)
        self._path = path
        self._handle = _kiln.Model(path, threads, device)
        self._lock = threading.Lock()

    # -- lifetime ---------------------------------------------------------
    def close(self) -> None:
        """Frees the model (and its temporary artifact, if compiled)."""
        handle = getattr(self, "_handle", None)
        if handle is not None:
            handle.close()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def save(self, path: PathLike) -> None:
        """Writes the model's .kiln artifact to `path` (atomically)."""
        path = os.fspath(path)
        tmp = path + ".tmp-%d" % os.getpid()
        try:
            shutil.copyfile(self._path, tmp)
            os.replace(tmp, path)
        except OSError as e:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise KilnError("cannot save the model to %s: %s" % (path, e)) from e

    # -- properties -------------------------------------------------------
    @property
    def n_vocab(self) -> int:
        return self._handle.n_vocab

    @property
    def n_ctx(self) -> int:
        return self._handle.n_ctx

    @property
    def host_variant(self) -> str:
        """The host-code variant chosen for this CPU (e.g. x86-64-v4)."""
        return self._handle.host_variant

    @property
    def device(self) -> str:
        """Where the model runs: "cpu", or e.g. "cuda:0 (NVIDIA H200, sm_90,
        cubin sm_90a)"."""
        return self._handle.device

    # -- tokenizer --------------------------------------------------------
    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Token ids of `text` (with BOS when the model adds one)."""
        return self._handle.tokenize(text, add_special, parse_special)

    def detokenize(self, ids: Sequence[int]) -> str:
        """The text of token ids (invalid UTF-8 replaced)."""
        return self._handle.detokenize([int(i) for i in ids]).decode("utf-8", errors="replace")

    # -- evaluation -------------------------------------------------------
    def logits(self, tokens: Sequence[int], rows: Optional[int] = None) -> np.ndarray:
        """Evaluates `tokens` from position 0 and returns the logits of the
        last token, float32 [vocab], or of the last `rows` tokens, [rows, vocab]."""
        ids = [int(t) for t in tokens]
        with self._lock:
            out = self._handle.logits(ids, 1 if rows is None else int(rows))
        return out[0] if rows is None else out

    def embed(self, texts: Union[str, Sequence[str]]) -> np.ndarray:
        """An encoder's sentence embeddings: float32 [len(texts), n_embd], or
        [n_embd] for one string."""
        one = isinstance(texts, str)
        with self._lock:
            out = self._handle.embed([texts] if one else [str(t) for t in texts])
        return out[0] if one else out

    def generate(self, prompt: str, max_tokens: int = 128, temperature: Optional[float] = None,
                 top_k: Optional[int] = None, top_p: Optional[float] = None,
                 min_p: Optional[float] = None, repeat_penalty: Optional[float] = None,
                 seed: Optional[int] = None, chat: bool = False,
                 stream: bool = False) -> Union[str, Iterator[str]]:
        """Generates up to `max_tokens` tokens after `prompt` (a fresh
        sequence each call). Unset sampling parameters take the artifact's
        defaults; temperature=0 is greedy; seed=None draws a random seed.
        With stream=True, returns an iterator of text pieces whose
        concatenation is the text stream=False returns."""
        defaults = self._handle.default_params()
        args = (
            prompt, int(max_tokens),
            float(defaults["temperature"] if temperature is None else temperature),
            int(defaults["top_k"] if top_k is None else top_k),
            float(defaults["top_p"] if top_p is None else top_p),
            float(defaults["min_p"] if min_p is None else min_p),
            float(defaults["repeat_penalty"] if repeat_penalty is None else repeat_penalty),
            int.from_bytes(os.urandom(8), "little") if seed is None else int(seed) & (2**64 - 1),
            bool(chat),
        )
        if stream:
            return self._stream(args)
        pieces: list[bytes] = []
        with self._lock:
            self._handle.generate(*args, pieces.append)
        return b"".join(pieces).decode("utf-8", errors="replace")

    def _stream(self, args: tuple) -> Iterator[str]:
        # The C call runs in a thread (without the GIL) and hands pieces over
        # a queue; closing the generator early stops generation.
        pieces: "queue.Queue[object]" = queue.Queue()
        stop = threading.Event()
        done = object()

        def on_piece(piece: bytes) -> bool:
            pieces.put(piece)
            return stop.is_set()

        def run() -> None:
            try:
                with self._lock:
                    self._handle.generate(*args, on_piece)
            except BaseException as e:  # re-raised in the consumer
                pieces.put(e)
            pieces.put(done)

        def iterate() -> Iterator[str]:
            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            try:
                while True:
                    item = pieces.get()
                    if item is done:
                        tail = decoder.decode(b"", final=True)
                        if tail:
                            yield tail
                        return
                    if isinstance(item, BaseException):
                        raise item
                    text = decoder.decode(item)
                    if text:
                        yield text
            finally:
                stop.set()
                worker.join()

        return iterate()


_NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16, "float64": np.float64,
                 "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
                 "uint8": np.uint8}


class Function:
    """A function of a module compiled by :func:`compile_mlir`.

    Called with its tensor arguments (numpy arrays, passed without copying
    when C-contiguous), KV caches (uint8 arrays, updated in place) and
    integers, in the function's order; returns its results, allocated here
    (one array, or a tuple). Dynamic result sizes are the token count, taken
    from the input named by `dims_from` (default: the first input with a
    dynamic size). `weights=` is for a module compiled without weights: the
    bytes its ``#kiln.external`` ranges point into."""

    def __init__(self, module: "_kiln.MlirModule", name: str, threads: int,
                 dims_from: Optional[str]):
        self._module = module
        self.name = name
        self.signature = module.signature(name)
        self.max_tokens = module.max_tokens(name)
        self.scratch_bytes = module.scratch_bytes(name)
        self.threads = threads
        self.inputs = [a for a in self.signature if a[1] != "result"]
        self.results = [a for a in self.signature if a[1] == "result"]
        names = [a[0] for a in self.inputs]
        if dims_from is not None and dims_from not in names:
            raise KilnError("dims_from=%r names no input of @%s (inputs: %s)" % (
                dims_from, name, ", ".join(names)))
        self.dims_from = dims_from

    def __repr__(self) -> str:
        def fmt(a: tuple) -> str:
            dims = "x".join("?" if d is None else str(d) for d in a[3])
            return "%s: %s<%s%s>" % (a[0], a[1], dims + "x" if dims else "", a[2])
        return "<kiln.Function @%s(%s)>" % (self.name, ", ".join(fmt(a) for a in self.signature))

    def __call__(self, *args: Union[np.ndarray, int], weights: Optional[np.ndarray] = None,
                 threads: Optional[int] = None) -> Union[np.ndarray, tuple]:
        if len(args) != len(self.inputs):
            raise KilnError("@%s takes %d arguments (%s), got %d" % (
                self.name, len(self.inputs), ", ".join(a[0] for a in self.inputs), len(args)))
        call_args: list = []
        tokens = None
        for value, (name, kind, dtype, shape) in zip(args, self.inputs):
            if kind == "integer":
                if not isinstance(value, (int, np.integer)):
                    raise KilnError("argument '%s' of @%s must be an integer" % (name, self.name))
                call_args.append(int(value))
                continue
            if not isinstance(value, np.ndarray):
                raise KilnError("argument '%s' of @%s must be a numpy array" % (name, self.name))
            if kind == "bytes" and not value.flags.writeable:
                raise KilnError("argument '%s' of @%s is written and must be writable" % (
                    name, self.name))
            if not value.flags.c_contiguous:
                if kind == "bytes":
                    raise KilnError("argument '%s' of @%s must be C-contiguous" % (name, self.name))
                value = np.ascontiguousarray(value)
            call_args.append(value)
            if tokens is None and (self.dims_from == name or self.dims_from is None) and \
                    kind == "tensor" and value.ndim == len(shape):
                dyn = [value.shape[i] for i, d in enumerate(shape) if d is None]
                if dyn:
                    tokens = dyn[0]
        # An input of the wrong rank is reported by the C API (in argument
        # order, before any result).
        rank_error = any(isinstance(v, np.ndarray) and v.ndim != len(a[3])
                         for v, a in zip(call_args, self.inputs))
        outs = []
        for name, _, dtype, shape in self.results:
            if None in shape and tokens is None and rank_error:
                tokens = 1
            elif None in shape and tokens is None:
                raise KilnError("cannot size result '%s' of @%s: no input has a dynamic size" % (
                    name, self.name))
            dims = tuple(tokens if d is None else d for d in shape)
            outs.append(np.empty(dims, dtype=_NUMPY_DTYPES[dtype]))
        w = _as_weights(weights)
        self._module.call(self.name, call_args + outs, w,
                          self.threads if threads is None else int(threads))
        if len(outs) == 1:
            return outs[0]
        return tuple(outs)


def _as_weights(weights: Union[None, PathLike, bytes, np.ndarray]) -> Optional[np.ndarray]:
    """The weights bytes: a path (read once), bytes, or a uint8 array."""
    if weights is None:
        return None
    if isinstance(weights, np.ndarray):
        if weights.dtype != np.uint8 or weights.ndim != 1:
            raise KilnError("weights must be a 1-D uint8 array, got %s %s" % (
                weights.dtype, weights.shape))
        return np.ascontiguousarray(weights)
    if isinstance(weights, (bytes, bytearray, memoryview)):
        return np.frombuffer(weights, dtype=np.uint8)
    path = os.fspath(weights)
    try:
        return np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise KilnError("%s: %s" % (path, e.strerror or e)) from e


def compile_mlir(text: str, pipeline: str = "", *, entry: Optional[str] = None,
                 weights: Union[None, PathLike, bytes, np.ndarray] = None,
                 threads: int = 1, dims_from: Optional[str] = None) -> Function:
    """Compiles a module of kiln functions and returns one as a callable.

    The module is lowered as ``kiln-compile`` lowers an .mlir module.
    `pipeline`: space-separated options, ``activations=int2..int8|f32``,
    ``max-tokens=N``, ``cpu=x86-64-v4|x86-64-v3|generic``,
    ``unstructured=auto|bitmap|dense``. `entry`: the
    function (default: the module's only one). `weights`: the bytes the
    module's ``#kiln.external`` ranges point into (a path, bytes or a uint8
    array), read now: weights the kernels want in their own layout are packed
    (int8 activations: the 16-row layout of kiln-compile's artifacts) and the
    module keeps them, so calls take no weights. Without `weights` nothing is
    packed and each call passes the file's bytes as they are (``weights=``).
    """
    module = _kiln.MlirModule(text, pipeline, _as_weights(weights))
    names = module.functions()
    if entry is None:
        if len(names) != 1:
            raise KilnError("the module has %d functions (%s): pass entry=" % (
                len(names), ", ".join("@" + n for n in names)))
        entry = names[0]
    return Function(module, entry, threads, dims_from)
