// Module resolution hooks (node:module register()) for a worker that runs a function's source
// folder in place of its deployed package (orch's hot reload): a bare specifier the source
// folder cannot resolve is resolved again from each of the deployed package's folders, which
// hold the dependencies orch vendored (node_modules). Relative and absolute specifiers, and
// everything the source folder resolves itself, are left alone.

import { pathToFileURL } from 'node:url';

let parents = [];

export async function initialize(data) {
  const dirs = (data && data.dirs) || [];
  parents = dirs.map((dir) => pathToFileURL(dir.endsWith('/') ? dir : dir + '/').href);
}

function isBare(specifier) {
  return !specifier.startsWith('.') && !specifier.startsWith('/') && !/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(specifier);
}

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    if (!error || error.code !== 'ERR_MODULE_NOT_FOUND' || !isBare(specifier)) throw error;
    for (const parentURL of parents) {
      try {
        return await nextResolve(specifier, { ...context, parentURL });
      } catch (_again) {
        // not there either: try the next folder
      }
    }
    throw error;
  }
}
