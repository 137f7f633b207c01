"""A Lightroom Classic stand-in that runs the shipped plugin's Lua under a real Lua 5.1 runtime.

Lightroom gives plugin code an `import` global for its SDK modules and a `require` that loads the
plugin's own files. `LightroomHost` provides both: the SDK modules come from `lr_shims.lua`, backed
by the Python callbacks below for everything that touches the outside world. LrHttp really
performs HTTP (http.client, one thread per request, so other tasks keep running while a request
waits, as in Lightroom); files are real files.

Tests drive it as Lightroom would: `run_export(settings, items)` calls the filter's
`postProcessRenderedPhotos` inside a task and runs the tasks to completion, then the host's
records (requests, renditionIsDone calls, catalog additions, log) say what happened.
"""
from __future__ import annotations

import http.client
import os
import shutil
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import lupa.lua51 as lua51

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "bridge_lightroom" / "seamwise.lrplugin"
SHIMS = Path(__file__).with_name("lr_shims.lua")


@dataclass
class Request:
    """One LrHttp call as it went out and what came back (status None: no response)."""
    method: str
    url: str
    headers: dict
    body_bytes: int
    status: Optional[int] = None
    error: Optional[str] = None
    body: bytes = b""
    form_parts: list = field(default_factory=list)  # postMultipart: (name, fileName, contentType)

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.url).path


@dataclass
class Rendition:
    """What one photo of an export looks like to the filter."""
    path: Path                      # the rendered file (the filter works on it in place)
    photo_path: Optional[Path] = None   # the original in the catalog
    render_error: Optional[str] = None  # Lightroom's own render failure, if any


@dataclass
class Outcome:
    success: bool
    message: Optional[str]


@dataclass
class HostRecords:
    requests: list[Request] = field(default_factory=list)
    done: dict[int, Outcome] = field(default_factory=dict)
    catalog: list[tuple[str, Optional[str], Optional[str]]] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    task_errors: list[str] = field(default_factory=list)
    progress: list[tuple[float, str]] = field(default_factory=list)
    # what the rendition's file held when it was reported done: what goes downstream
    done_files: dict[int, Optional[bytes]] = field(default_factory=dict)
    rendition_paths: dict[int, Path] = field(default_factory=dict)
    late_done: list[int] = field(default_factory=list)  # reports after the loop passed them
    # the largest string that crossed between the plugin and Lightroom (HTTP bodies, file reads)
    lua_string_bytes: int = 0
    render_waits: dict[int, float] = field(default_factory=dict)  # seconds waitForRender slept


def _network_error_code(exc: BaseException) -> str:
    """LrHttp's errorCode names for the ways a request can fail without a response."""
    if isinstance(exc, ConnectionRefusedError):
        return "cannotConnectToHost"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timedOut"
    if isinstance(exc, socket.gaierror):
        return "cannotFindHost"
    if isinstance(exc, (ConnectionError, http.client.HTTPException, OSError)):
        return "networkConnectionLost"
    return "unknown"


def _multipart(parts: list) -> tuple[bytes, str]:
    """The multipart/form-data body LrHttp.postMultipart sends for `parts`, each
    [name, value, fileName, filePath, contentType] (False where absent); file parts are read here,
    by the host, as Lightroom does."""
    boundary = "----LightroomBoundary" + os.urandom(8).hex()
    out = bytearray()
    for name, value, file_name, file_path, content_type in parts:
        out += f"--{boundary}\r\n".encode()
        disposition = f'form-data; name="{name.decode()}"'
        if file_path:
            disposition += f'; filename="{(file_name or Path(file_path.decode()).name.encode()).decode()}"'
        out += f"Content-Disposition: {disposition}\r\n".encode()
        if content_type:
            out += f"Content-Type: {content_type.decode()}\r\n".encode()
        out += b"\r\n"
        out += Path(file_path.decode()).read_bytes() if file_path else bytes(value)
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


class _HttpCall:
    """One request performed on its own thread."""

    def __init__(self, request: Request, body: Optional[bytes], timeout: float,
                 hooks: list[Callable[[Request], None]], hook_errors: list[BaseException]):
        self.request = request
        self.result: Optional[tuple] = None
        self._body = body
        self._timeout = timeout or 60.0
        self._hooks = hooks
        self._hook_errors = hook_errors
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        req = self.request
        parts = urllib.parse.urlsplit(req.url)
        conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            conn = conn_class(parts.hostname, parts.port, timeout=self._timeout)
            try:
                conn.request(req.method, target, body=self._body, headers=req.headers)
                response = conn.getresponse()
                req.status, req.body = response.status, response.read()
                result = (req.body, response.status, response.reason,
                          [x for pair in response.getheaders() for x in pair], None)
            finally:
                conn.close()
        except Exception as exc:  # every failure becomes LrHttp's "no response" answer
            req.error = _network_error_code(exc)
            result = (None, None, None, None, req.error)
        try:
            for hook in self._hooks:  # before the plugin sees the answer, so tests act at a known point
                hook(req)
        except BaseException as exc:  # the test's own failure, raised by run_tasks; the plugin goes on
            self._hook_errors.append(exc)
        self.result = result


class LightroomHost:
    """One Lightroom session with the plugin loaded."""

    def __init__(self, plugin_dir: Path = PLUGIN_DIR):
        self.plugin_dir = plugin_dir
        self.records = HostRecords()
        self.response_hooks: list[Callable[[Request], None]] = []
        self._hook_errors: list[BaseException] = []
        self.render_seconds = 0.0
        self.catalog_busy = False   # another task holds the catalog's write access
        self._cancel = threading.Event()
        self._calls: dict[int, _HttpCall] = {}
        self._next_call = 0
        self.lua = lua51.LuaRuntime(encoding=None, unpack_returned_tuples=True, register_eval=False)
        py = self.lua.table_from({k.encode(): v for k, v in self._callbacks().items()})
        load = self.lua.eval(b"function(source, name) return assert(loadstring(source, name)) end")
        shims = load(SHIMS.read_bytes(), b"@lr_shims.lua")
        self._import, self._scheduler, self.prefs, self._new_filter_context = shims(py)
        self._modules: dict[bytes, object] = {}
        g = self.lua.globals()
        g[b"import"] = self._import
        g[b"require"] = self.require
        g[b"LOC"] = self.lua.eval(b"function(s) return (s:gsub('^%$%$%$/[^=]*=', '')) end")

    # -- plugin loading, as Lightroom does it ------------------------------------------------------
    def compile(self, path: Path):
        """Compiles one plugin file with the runtime (syntax check); returns the chunk."""
        load = self.lua.eval(b"function(source, name) local chunk, message = loadstring(source, name); "
                             b"return chunk or false, message end")
        chunk, message = load(path.read_bytes(), b"@" + path.name.encode())
        if chunk is False:
            raise SyntaxError(message.decode())
        return chunk

    def require(self, name):
        """Lightroom's `require`: runs a plugin file once and caches what it returns."""
        key = name if isinstance(name, bytes) else str(name).encode()
        if key not in self._modules:
            self._modules[key] = self.compile(self.plugin_dir / f"{key.decode()}.lua")()
        return self._modules[key]

    def info(self):
        return self.compile(self.plugin_dir / "Info.lua")()

    def filter_provider(self):
        info = self.info()
        provider_file = info[b"LrExportFilterProvider"][b"file"].decode()
        return self.require(provider_file.removesuffix(".lua").encode())

    # -- what the user does ------------------------------------------------------------------------
    def cancel(self) -> None:
        """The user clicks the progress bar's cancel button."""
        self._cancel.set()

    def table(self, values: dict):
        """A Lua table from Python values (strings become Lua strings)."""
        return self.lua.table_from({k.encode(): (v.encode() if isinstance(v, str) else v)
                                    for k, v in values.items()})

    def property_table(self, overrides: Optional[dict] = None):
        """The export settings: the preset fields' defaults, then `overrides`."""
        values = {}
        for fld in self.filter_provider()[b"exportPresetFields"].values():
            default = fld[b"default"]
            values[fld[b"key"].decode()] = default.decode() if isinstance(default, bytes) else default
        values.update(overrides or {})
        return self.table(values)

    def run_task(self, fn, *args, timeout: float = 60.0) -> None:
        """Runs the Lua function `fn(*args)` in a new task, then every task until all are finished.
        (A task must be Lua all the way down: a coroutine cannot yield across a Python call.)"""
        start = self.lua.eval(b"function(import, fn, ...) local args = {...}; "
                              b"import('LrTasks').startAsyncTask(function() fn(unpack(args)) end, 'host') end")
        start(self._import, fn, *args)
        self.run_tasks(timeout)

    def run_tasks(self, timeout: float = 60.0) -> None:
        finished = self._scheduler[b"run"](time.monotonic() + timeout)
        if self._hook_errors:
            raise self._hook_errors[0]
        if not finished:
            raise TimeoutError(f"Lightroom tasks still running after {timeout} s")

    def run_export(self, settings, renditions: list[Rendition], timeout: float = 90.0) -> None:
        """Runs the post-process action over one export, as Lightroom would: inside a task, with a
        function context, over a filter context holding `renditions`."""
        items = self.lua.table_from([
            self.table({"path": str(r.path),
                        **({"photoPath": str(r.photo_path)} if r.photo_path else {}),
                        **({"renderError": r.render_error} if r.render_error else {})})
            for r in renditions])
        self.records.rendition_paths = {i + 1: Path(r.path) for i, r in enumerate(renditions)}
        context = self._new_filter_context(settings, items, self.render_seconds)
        export = self.lua.eval(b"function(import, postProcess, filterContext) "
                               b"import('LrFunctionContext').callWithContext('export', "
                               b"function(functionContext) postProcess(functionContext, filterContext) end) end")
        self.run_task(export, self._import, self.filter_provider()[b"postProcessRenderedPhotos"], context,
                      timeout=timeout)

    # -- callbacks for lr_shims.lua ----------------------------------------------------------------
    def _callbacks(self) -> dict:
        rec = self.records

        def http_start(method, url, body, header_pairs, timeout, parts=None):
            pairs = list(header_pairs.values()) if header_pairs is not None else []
            headers = {pairs[i].decode(): pairs[i + 1].decode() for i in range(0, len(pairs), 2)}
            body = bytes(body) if body is not None else None
            if body is not None:
                rec.lua_string_bytes = max(rec.lua_string_bytes, len(body))
            form_parts = [list(part.values()) for part in parts.values()] if parts is not None else []
            if parts is not None:
                body, headers["Content-Type"] = _multipart(form_parts)
            if body is not None and "Content-Length" not in headers:
                headers["Content-Length"] = str(len(body))
            req = Request(method.decode(), url.decode(), headers, len(body or b""),
                          form_parts=[(n.decode(), fn and fn.decode(), ct and ct.decode())
                                      for n, _, fn, _, ct in form_parts])
            rec.requests.append(req)
            self._next_call += 1
            self._calls[self._next_call] = _HttpCall(req, body, float(timeout), self.response_hooks,
                                                       self._hook_errors)
            return self._next_call

        def http_poll(call_id):
            call = self._calls[call_id]
            if call.result is None:
                return (False,)
            del self._calls[call_id]
            body, status, reason, headers, error = call.result
            rec.lua_string_bytes = max(rec.lua_string_bytes, len(body or b""))
            return (True, body, status, reason and reason.encode(),
                    self.lua.table_from([h.encode() for h in headers]) if headers is not None else None,
                    error and error.encode())

        def path_of(p) -> str:
            return p.decode() if isinstance(p, bytes) else str(p)

        def enc(s: str) -> bytes:
            return s.encode()

        def file_read(p):
            try:
                data = Path(path_of(p)).read_bytes()
            except OSError:
                return None
            rec.lua_string_bytes = max(rec.lua_string_bytes, len(data))
            return data

        def file_size(p):
            try:
                return Path(path_of(p)).stat().st_size
            except OSError:
                return None

        def file_exists(p):
            p = Path(path_of(p))
            return b"directory" if p.is_dir() else (b"file" if p.exists() else False)

        def file_delete(p):
            try:
                os.remove(path_of(p))
                return True
            except OSError as exc:
                return (False, str(exc).encode())

        def file_move(a, b):
            if Path(path_of(b)).exists():
                return (False, b"destination exists")
            try:
                os.rename(path_of(a), path_of(b))
                return True
            except OSError as exc:
                return (False, str(exc).encode())

        def file_copy(a, b):
            if Path(path_of(b)).exists():
                return (False, b"destination exists")
            try:
                shutil.copyfile(path_of(a), path_of(b))
                return True
            except OSError as exc:
                return (False, str(exc).encode())

        def file_unique_name(p):
            p = Path(path_of(p))
            n = 2
            candidate = p
            while candidate.exists():
                candidate = p.with_name(f"{p.stem}-{n}{p.suffix}")
                n += 1
            return enc(str(candidate))

        def rendition_done(index, success, message, automatic):
            if index in rec.done:
                if automatic:  # the filter reported it before the loop moved on: as it should
                    return
                # Lightroom ignores a report for a rendition the loop has already passed
                rec.late_done.append(index)
                return
            rec.done[index] = Outcome(bool(success), message.decode() if message is not None else None)
            path = rec.rendition_paths.get(index)
            rec.done_files[index] = path.read_bytes() if path and path.exists() else None

        return {
            "monotonic": time.monotonic,
            "time": time.time,
            "sleep": time.sleep,
            "http_start": http_start,
            "http_poll": http_poll,
            "cancel_requested": self._cancel.is_set,
            "progress": lambda portion, caption: rec.progress.append((portion, path_of(caption))),
            "log": lambda level, text: rec.log.append((level.decode(), path_of(text))),
            "task_error": lambda name, text: rec.task_errors.append(f"{path_of(name)}: {path_of(text)}"),
            "rendition_done": rendition_done,
            "render_wait": lambda index, seconds: rec.render_waits.__setitem__(index, seconds),
            "catalog_add": lambda p, stack, pos: rec.catalog.append(
                (path_of(p), stack and path_of(stack), pos and path_of(pos))),
            "path_extension": lambda p: enc(Path(path_of(p)).suffix.removeprefix(".")),
            "path_remove_extension": lambda p: enc(str(Path(path_of(p)).with_suffix(""))),
            "path_add_extension": lambda p, ext: enc(f"{path_of(p)}.{path_of(ext)}"),
            "path_leaf_name": lambda p: enc(Path(path_of(p)).name),
            "path_parent": lambda p: enc(str(Path(path_of(p)).parent)),
            "path_child": lambda p, name: enc(str(Path(path_of(p)) / path_of(name))),
            "file_read": file_read,
            "file_size": file_size,
            "catalog_busy": lambda: self.catalog_busy,
            "file_exists": file_exists,
            "file_delete": file_delete,
            "file_move": file_move,
            "file_copy": file_copy,
            "file_unique_name": file_unique_name,
        }
