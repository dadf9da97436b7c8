/**
 * Private keys at rest: PKCS#8 DER sealed with AES-256-GCM under a key derived from
 * a passphrase with scrypt. The envelope is a small JSON document so its parameters
 * can change later without guessing.
 */
import { createCipheriv, createDecipheriv, createPrivateKey, randomBytes, scrypt, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ZtmError } from '../errors.js';

const SCRYPT = { N: 1 << 15, r: 8, p: 1 } as const;

interface Envelope {
  format: 'ztmesh-sealed-key';
  version: 1;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  cipher: 'aes-256-gcm';
  iv: string;
  tag: string;
  ciphertext: string;
}

function deriveKey(passphrase: string, salt: Buffer, N: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(passphrase, salt, 32, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export async function sealPrivateKey(key: KeyObject, passphrase: string): Promise<string> {
  if (!passphrase) throw new ZtmError('ZTM_CA', 'refusing to seal a private key with an empty passphrase');
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const k = await deriveKey(passphrase, salt, SCRYPT.N, SCRYPT.r, SCRYPT.p);
  const c = createCipheriv('aes-256-gcm', k, iv);
  c.setAAD(Buffer.from('ztmesh-sealed-key/v1'));
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' }) as Buffer;
  const ct = Buffer.concat([c.update(pkcs8), c.final()]);
  const env: Envelope = {
    format: 'ztmesh-sealed-key',
    version: 1,
    kdf: { name: 'scrypt', ...SCRYPT, salt: salt.toString('base64') },
    cipher: 'aes-256-gcm',
    iv: iv.toString('base64'),
    tag: c.getAuthTag().toString('base64'),
    ciphertext: ct.toString('base64'),
  };
  return JSON.stringify(env, null, 2) + '\n';
}

export async function openPrivateKey(sealed: string, passphrase: string, what = 'private key'): Promise<KeyObject> {
  let env: Envelope;
  try {
    env = JSON.parse(sealed) as Envelope;
  } catch {
    throw new ZtmError('ZTM_CA', `${what} is not a ztmesh sealed key`);
  }
  if (env.format !== 'ztmesh-sealed-key' || env.version !== 1 || env.kdf?.name !== 'scrypt' || env.cipher !== 'aes-256-gcm') {
    throw new ZtmError('ZTM_CA', `${what} uses an unknown sealing format`);
  }
  const { N, r, p } = env.kdf;
  if (!(N >= 1 << 14 && N <= 1 << 20 && r >= 1 && r <= 32 && p >= 1 && p <= 16)) throw new ZtmError('ZTM_CA', `${what} has out-of-range scrypt parameters`);
  const k = await deriveKey(passphrase, Buffer.from(env.kdf.salt, 'base64'), N, r, p);
  const d = createDecipheriv('aes-256-gcm', k, Buffer.from(env.iv, 'base64'));
  d.setAAD(Buffer.from('ztmesh-sealed-key/v1'));
  d.setAuthTag(Buffer.from(env.tag, 'base64'));
  let pkcs8: Buffer;
  try {
    pkcs8 = Buffer.concat([d.update(Buffer.from(env.ciphertext, 'base64')), d.final()]);
  } catch {
    throw new ZtmError('ZTM_CA', `cannot decrypt the ${what}: wrong passphrase (ZTMESH_CA_PASSPHRASE or --passphrase-file) or a corrupted file`);
  }
  return createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
}

/** Read a PEM private key (plain or PKCS#8-encrypted) as given to `ca import`. */
export function readPemPrivateKey(pem: string, passphrase?: string): KeyObject {
  try {
    return createPrivateKey(passphrase ? { key: pem, format: 'pem', passphrase } : { key: pem, format: 'pem' });
  } catch (e) {
    throw new ZtmError('ZTM_CA', `cannot read the private key: ${(e as Error).message}`);
  }
}

export interface PassphraseSource {
  passphraseFile?: string;
  env?: NodeJS.ProcessEnv;
}

/** The CA passphrase: `--passphrase-file` first, then `ZTMESH_CA_PASSPHRASE`. */
export async function resolvePassphrase(src: PassphraseSource = {}): Promise<string> {
  if (src.passphraseFile) {
    let text: string;
    try {
      text = await readFile(src.passphraseFile, 'utf8');
    } catch (e) {
      throw new ZtmError('ZTM_CONFIG_IO', `cannot read passphrase file ${src.passphraseFile}: ${(e as Error).message}`);
    }
    const pass = text.replace(/\r?\n$/, '');
    if (!pass) throw new ZtmError('ZTM_USAGE', `passphrase file ${src.passphraseFile} is empty`);
    return pass;
  }
  const env = src.env ?? process.env;
  const v = env.ZTMESH_CA_PASSPHRASE;
  if (v) return v;
  throw new ZtmError('ZTM_USAGE', 'the CA private keys are encrypted at rest: set ZTMESH_CA_PASSPHRASE or pass --passphrase-file <file>');
}
