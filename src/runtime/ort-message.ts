/** onnxruntime's error messages, cut to what a user needs (no native library loaded to do it). */

/** ORT's error message without source paths, assertion text and trailing noise, at most ~300 chars. */
export function trimOrtMessage(e: unknown): string {
  let m = e instanceof Error ? e.message : String(e);
  const afterCode = /\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*/.exec(m);
  if (afterCode) m = m.slice(afterCode.index + afterCode[0].length);
  // "/onnxruntime_src/…/webgpu_context.cc:136 <function> <condition> was false. Failed to …"
  const wasFalse = m.lastIndexOf(' was false. ');
  if (wasFalse >= 0) m = m.slice(wasFalse + ' was false. '.length);
  m = m.replace(/(^|\s)\/\S+\.(cc|cpp|h):\d+\s*/g, '$1');
  m = m.replace(/\s+/g, ' ').trim();
  return m.length > 300 ? m.slice(0, 297) + '...' : m;
}
