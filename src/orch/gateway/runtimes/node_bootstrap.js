'use strict';
// Lambda-like Node.js execution environment for orch's local gateway (one worker process).
//
// Started by orch.gateway.workers as
//   node --max-old-space-size=<memory_size> node_bootstrap.js <req-fd> <resp-fd>
// with the function's Lambda environment variables set (LAMBDA_TASK_ROOT, _HANDLER,
// AWS_LAMBDA_FUNCTION_* ...), the working directory set to the code directory and
// stdout/stderr connected to the log pipe the gateway forwards as the function's logs.
//
// Wire protocol: the same frames as python_bootstrap.py (see its docstring):
//   gateway -> worker: meta_len:u32 event_len:u32 meta(JSON {id, deadline, arn}) event
//   worker -> gateway: status:u8 max_rss_kb:u32 length:u32 body
//   status 0 result, 1 handler error, 2 init error (exits), 3 out of memory, 4 ready,
//   5 fatal error during an invocation (uncaught exception / unhandled rejection: exits).
//
// Handlers: CommonJS (require) or ES modules (.mjs, or "type": "module"), callback style
// (event, context, callback) or async/promise. Known difference from Lambda: the response
// is sent as soon as the callback is called (as if callbackWaitsForEmptyEventLoop were
// false), because a warm worker's event loop is never empty.

const fs = require('fs');
const net = require('net');
const path = require('path');
const util = require('util');
const { pathToFileURL } = require('url');

const STATUS_OK = 0;
const STATUS_ERROR = 1;
const STATUS_INIT_ERROR = 2;
const STATUS_READY = 4;
const STATUS_FATAL = 5;

const reqFd = Number(process.argv[2]);
const respFd = Number(process.argv[3]);
const taskRoot = process.env.LAMBDA_TASK_ROOT || process.cwd();
// Hot reload: taskRoot is the function's source folder and these folders (the deployed
// package) hold the dependencies orch vendored into it. require() finds them through
// NODE_PATH (set by the gateway); import() through the resolve hook registered below.
const dependencyDirs = (process.env.ORCH_DEPENDENCY_PATH || '').split(path.delimiter).filter(Boolean);
delete process.env.ORCH_DEPENDENCY_PATH;
let dependencyHooks = false;

function useDependencyDirsForImports() {
  const mod = require('module');
  if (dependencyHooks || !dependencyDirs.length || typeof mod.register !== 'function') return;
  dependencyHooks = true;
  const hooks = pathToFileURL(path.join(__dirname, 'node_dependency_hooks.mjs')).href;
  mod.register(hooks, { data: { dirs: dependencyDirs } });
}

let currentRequestId = '';
let current = null; // {id, done} of the invocation in flight

// ---- logging: console.* -> "<ISO time>\t<request id>\t<LEVEL>\t<message>" on stdout -----
function patchConsole() {
  const write = (level, args) => {
    const msg = util.format.apply(util, args).replace(/\n/g, '\r');
    const line = `${new Date().toISOString()}\t${currentRequestId}\t${level}\t${msg}\n`;
    try {
      fs.writeSync(1, line);
    } catch (_e) {
      // the log pipe is gone: nothing useful to do
    }
  };
  console.log = (...a) => write('INFO', a);
  console.info = (...a) => write('INFO', a);
  console.warn = (...a) => write('WARN', a);
  console.error = (...a) => write('ERROR', a);
  console.debug = (...a) => write('DEBUG', a);
  console.trace = (...a) => write('TRACE', a);
  console.fatal = (...a) => write('FATAL', a);
}

// ---- frames ------------------------------------------------------------------------------
// Peak RSS from /proc/self/status (VmHWM): resourceUsage().maxRSS (getrusage) still counts
// the gateway's own peak after fork + exec.
let statusFd = -1;
try {
  statusFd = fs.openSync('/proc/self/status', 'r');
} catch (_e) {
  statusFd = -1;
}
const statusBuf = Buffer.alloc(4096);

function maxRssKb() {
  if (statusFd >= 0) {
    try {
      const n = fs.readSync(statusFd, statusBuf, 0, statusBuf.length, 0);
      const text = statusBuf.toString('latin1', 0, n);
      const m = /VmHWM:\s*(\d+)/.exec(text);
      if (m) return Math.min(Number(m[1]), 0xffffffff);
    } catch (_e) {
      // fall through
    }
  }
  return Math.min(process.resourceUsage().maxRSS, 0xffffffff);
}

function send(status, body) {
  const payload = body === undefined || body === null ? Buffer.alloc(0) : Buffer.from(body);
  const header = Buffer.alloc(9);
  header.writeUInt8(status, 0);
  header.writeUInt32BE(maxRssKb(), 1);
  header.writeUInt32BE(payload.length, 5);
  const data = Buffer.concat([header, payload]);
  let off = 0;
  while (off < data.length) {
    try {
      off += fs.writeSync(respFd, data, off, data.length - off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
    }
  }
}

// Paths as Lambda names them in stack traces and messages: the code under /var/task, the
// runtime (this file) as /var/runtime/index.mjs; never a folder of the machine running it.
const lambdaPaths = [
  [pathToFileURL(__filename).href, 'file:///var/runtime/index.mjs'],
  [__filename, '/var/runtime/index.mjs'],
  [pathToFileURL(taskRoot).href, 'file:///var/task'],
  [taskRoot, '/var/task'],
  ...dependencyDirs.flatMap((dir) => [
    [pathToFileURL(dir).href, 'file:///var/task'],
    [dir, '/var/task'],
  ]),
];

function lambdaText(text) {
  let out = text;
  for (const [local, remote] of lambdaPaths) out = out.split(local).join(remote);
  return out;
}

function errorDoc(err) {
  if (err instanceof Error || (err && typeof err === 'object' && 'message' in err && 'name' in err)) {
    return {
      errorType: err.name || 'Error',
      errorMessage: err.message === undefined ? '' : lambdaText(String(err.message)),
      trace: typeof err.stack === 'string' ? lambdaText(err.stack).split('\n') : [],
    };
  }
  let message;
  try {
    message = typeof err === 'string' ? err : JSON.stringify(err);
  } catch (_e) {
    message = String(err);
  }
  return { errorType: typeof err, errorMessage: message === undefined ? String(err) : message, trace: [] };
}

function logError(doc) {
  const line = `${new Date().toISOString()}\t${currentRequestId}\tERROR\tInvoke Error \t${JSON.stringify(doc)}\n`;
  try {
    fs.writeSync(1, line);
  } catch (_e) {
    // ignore
  }
}

class RuntimeError extends Error {
  constructor(name, message) {
    super(message);
    this.name = name;
  }
}

// ---- handler loading ---------------------------------------------------------------------
function splitHandler(handler) {
  const slash = handler.lastIndexOf('/');
  const dot = handler.indexOf('.', slash + 1);
  if (dot < 0) throw new RuntimeError('Runtime.MalformedHandlerName', `Bad handler ${handler}`);
  return [handler.slice(0, dot), handler.slice(dot + 1)];
}

function isEsm(file) {
  if (file.endsWith('.mjs')) return true;
  if (file.endsWith('.cjs')) return false;
  let dir = path.dirname(file);
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        return JSON.parse(fs.readFileSync(pkg, 'utf8')).type === 'module';
      } catch (_e) {
        return false;
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir || !dir.startsWith(taskRoot)) return false;
    dir = parent;
  }
}

async function loadModule(moduleName) {
  const base = path.resolve(taskRoot, moduleName);
  for (const ext of ['.js', '.mjs', '.cjs']) {
    const file = base + ext;
    if (fs.existsSync(file)) {
      if (isEsm(file)) {
        useDependencyDirsForImports();
        return import(pathToFileURL(file).href);
      }
      try {
        return require(file);
      } catch (e) {
        if (e && e.code === 'ERR_REQUIRE_ESM') {
          useDependencyDirsForImports();
          return import(pathToFileURL(file).href);
        }
        throw e;
      }
    }
  }
  // not a file in the task root: a package (node_modules) or a directory
  return require(require.resolve(moduleName, { paths: [taskRoot] }));
}

async function loadHandler(handlerString) {
  const [moduleName, handlerPath] = splitHandler(handlerString);
  let mod;
  try {
    mod = await loadModule(moduleName);
  } catch (e) {
    if (e instanceof SyntaxError) {
      throw new RuntimeError('Runtime.UserCodeSyntaxError', `${e.name}: ${e.message}`);
    }
    if (e && (e.code === 'MODULE_NOT_FOUND' || e.code === 'ERR_MODULE_NOT_FOUND')) {
      throw new RuntimeError('Runtime.ImportModuleError', `Error: ${e.message}`);
    }
    throw e;
  }
  let fn = mod;
  for (const part of handlerPath.split('.')) {
    fn = fn === undefined || fn === null ? undefined : fn[part];
  }
  if (fn === undefined && mod && mod.default) {
    fn = mod.default;
    for (const part of handlerPath.split('.')) {
      fn = fn === undefined || fn === null ? undefined : fn[part];
    }
  }
  if (fn === undefined) {
    throw new RuntimeError(
      'Runtime.HandlerNotFound',
      `${moduleName}.${handlerPath} is undefined or not exported`
    );
  }
  if (typeof fn !== 'function') {
    throw new RuntimeError('Runtime.HandlerNotFound', `${moduleName}.${handlerPath} is not a function`);
  }
  return fn;
}

// ---- invocation --------------------------------------------------------------------------
function makeContext(meta, finish) {
  const env = process.env;
  const context = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: meta.arn,
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: meta.id,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    identity: undefined,
    clientContext: undefined,
    getRemainingTimeInMillis: () => Math.max(meta.deadline - Date.now(), 0),
    succeed: (result) => finish(null, result),
    fail: (err) => finish(err === undefined || err === null ? new Error('handled') : err),
    done: (err, result) => finish(err, result),
  };
  return context;
}

function invoke(handler, meta, eventBytes) {
  currentRequestId = meta.id;
  const inv = { id: meta.id, done: false };
  current = inv;
  const finish = (err, result) => {
    if (inv.done) return;
    inv.done = true;
    current = null;
    if (err !== undefined && err !== null) {
      const doc = errorDoc(err);
      logError(doc);
      send(STATUS_ERROR, JSON.stringify(doc));
      return;
    }
    let body;
    try {
      body = JSON.stringify(result === undefined ? null : result);
    } catch (e) {
      const doc = { errorType: 'Runtime.MarshalError', errorMessage: `Unable to stringify response body: ${e.message}`, trace: [] };
      send(STATUS_ERROR, JSON.stringify(doc));
      return;
    }
    send(STATUS_OK, body === undefined ? 'null' : body);
  };
  let event;
  try {
    event = JSON.parse(eventBytes.toString('utf8'));
  } catch (e) {
    finish(new RuntimeError('Runtime.UnmarshalError', `Unable to parse event: ${e.message}`));
    return;
  }
  const context = makeContext(meta, finish);
  let result;
  try {
    result = handler(event, context, (err, res) => finish(err, res));
  } catch (e) {
    finish(e);
    return;
  }
  if (result && typeof result.then === 'function') {
    result.then(
      (res) => finish(null, res),
      (err) => finish(err === undefined || err === null ? new Error(String(err)) : err)
    );
  } else if (handler.length < 3) {
    // a synchronous handler that takes no callback: Lambda answers null once the event
    // loop is empty; answer once pending immediate work has run.
    setImmediate(() => finish(null, null));
  }
}

function fatal(err, type) {
  const doc = errorDoc(err);
  if (type) doc.errorType = type;
  logError(doc);
  try {
    if (current !== null) send(STATUS_FATAL, JSON.stringify(doc));
  } finally {
    process.exit(129);
  }
}

async function main() {
  patchConsole();
  process.on('uncaughtException', (err) => fatal(err));
  process.on('unhandledRejection', (reason) => {
    const err = reason instanceof Error ? reason : new Error(String(reason));
    fatal(err, 'Runtime.UnhandledPromiseRejection');
  });

  let handler;
  try {
    handler = await loadHandler(process.env._HANDLER || '');
  } catch (e) {
    const doc = errorDoc(e);
    logError(doc);
    send(STATUS_INIT_ERROR, JSON.stringify(doc));
    process.exit(0);
  }

  const input = new net.Socket({ fd: reqFd, readable: true, writable: false });
  let buf = Buffer.alloc(0);
  input.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= 8) {
      const metaLen = buf.readUInt32BE(0);
      const eventLen = buf.readUInt32BE(4);
      const total = 8 + metaLen + eventLen;
      if (buf.length < total) break;
      const meta = JSON.parse(buf.subarray(8, 8 + metaLen).toString('utf8'));
      const eventBytes = buf.subarray(8 + metaLen, total);
      buf = buf.subarray(total);
      invoke(handler, meta, eventBytes);
    }
  });
  input.on('end', () => process.exit(0));
  input.on('error', () => process.exit(0));
  send(STATUS_READY);
}

main();
