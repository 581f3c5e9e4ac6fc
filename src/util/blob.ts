import { formatError } from "../errors.js";

/**
 * The binary form of cached objects (Gram matrices, trained MLPs): a magic string, a u32 LE
 * length, a JSON header, then the raw payload. Read back from the bank's cache, so every length
 * is checked before use.
 */
export function packBlob(magic: string, header: object, payload: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const head = Buffer.alloc(magic.length + 4);
  head.write(magic, 0, "latin1");
  head.writeUInt32LE(json.length, magic.length);
  return Buffer.concat([head, json, payload]);
}

/** The JSON header (unvalidated) and the payload; `what` and `source` name the object in errors. */
export function unpackBlob(
  bytes: Uint8Array,
  magic: string,
  what: string,
  source: string,
): { header: Record<string, unknown>; payload: Buffer } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headLength = magic.length + 4;
  if (buf.length < headLength || buf.toString("latin1", 0, magic.length) !== magic) {
    throw formatError(source, `not a loramix ${what} (bad magic)`);
  }
  const jsonLength = buf.readUInt32LE(magic.length);
  if (headLength + jsonLength > buf.length) {
    throw formatError(
      source,
      `${what} header length ${jsonLength} exceeds the ${buf.length - headLength} bytes left`,
    );
  }
  let header: unknown;
  try {
    header = JSON.parse(buf.toString("utf8", headLength, headLength + jsonLength));
  } catch (error) {
    throw formatError(source, `${what} header is not valid JSON`, error);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw formatError(source, `${what} header is not a JSON object`);
  }
  return { header: header as Record<string, unknown>, payload: buf.subarray(headLength + jsonLength) };
}
