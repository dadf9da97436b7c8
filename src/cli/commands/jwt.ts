/** `ztmesh jwt verify`: check a token the way the gateway's RequestAuthentication does, to debug a 401. */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import type { CliContext } from '../context.js';
import { Exit } from '../context.js';
import { ZtmError } from '../../errors.js';
import { parseJwks, keysFor, type JwksKey } from '../../identity/jwks.js';
import { parseCompactJws, verifyJwsSignature, checkJwtClaims, JwsError, DEFAULT_MAX_TOKEN_LENGTH } from '../../identity/jws.js';
import { DEFAULT_LEEWAY_SECONDS } from '../../policy/request-authn.js';
import { decodeBase64UrlStrict } from '../../util/base64url.js';

export interface JwtVerifyOutput {
  valid: boolean;
  reason: string;
  header: Record<string, unknown> | null;
  claims: Record<string, unknown> | null;
  principal?: string;
  detail?: string;
}

/** Verify `token` with `keys`; pure, with the gateway's rules (strict JWS, leeway, issuer, audience). */
export function verifyJwt(token: string, keys: readonly JwksKey[], o: { issuer?: string; audiences?: string[]; nowSeconds: number; leewaySeconds?: number }): JwtVerifyOutput {
  const loose = (i: number): Record<string, unknown> | null => {
    try {
      const v = JSON.parse(decodeBase64UrlStrict(token.split('.')[i] ?? '').toString('utf8')) as unknown;
      return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
    } catch {
      return null;
    }
  };
  const fail = (reason: string, detail: string): JwtVerifyOutput => ({ valid: false, reason, detail, header: loose(0), claims: loose(1) });
  let jws;
  try {
    jws = parseCompactJws(token.trim(), { maxLength: DEFAULT_MAX_TOKEN_LENGTH });
  } catch (e) {
    if (e instanceof JwsError) return fail(e.reason, e.message);
    throw e;
  }
  const candidates = keysFor(keys, jws.kid, jws.alg);
  if (!candidates.length) return fail('no_matching_key', jws.kid ? `no key with kid "${jws.kid}"` : 'no usable key in the JWKS');
  let err: JwsError | undefined;
  let ok = false;
  for (const k of candidates) {
    try {
      verifyJwsSignature(jws, k);
      ok = true;
      break;
    } catch (e) {
      if (!(e instanceof JwsError)) throw e;
      err = e;
    }
  }
  if (!ok) return fail(err!.reason, err!.message);
  const p = jws.payload;
  if (o.issuer !== undefined && p.iss !== o.issuer) return fail('bad_issuer', `issuer ${JSON.stringify(p.iss)} is not ${JSON.stringify(o.issuer)}`);
  const c = checkJwtClaims(p, { nowSeconds: o.nowSeconds, audience: o.audiences?.length ? o.audiences : undefined, clockSkewSeconds: o.leewaySeconds ?? DEFAULT_LEEWAY_SECONDS });
  if (!c.ok) return fail(c.reason, c.detail);
  return { valid: true, reason: 'ok', header: jws.header as Record<string, unknown>, claims: p as Record<string, unknown>, principal: `${String(p.iss ?? '')}/${String(p.sub ?? '')}` };
}

export function registerJwt(program: Command, ctx: CliContext): void {
  const jwt = program.command('jwt').description('JSON Web Tokens: verify one as the gateway would');
  jwt
    .command('verify')
    .description('verify a JWT against a JWKS (file or URL); prints {"valid","reason","header","claims"}; exit 1 when invalid')
    .argument('<token>', 'the compact JWT ("-" reads it from stdin)')
    .requiredOption('--jwks <file|url>', 'the JWK Set (a file, or an http(s) URL)')
    .option('--issuer <iss>', 'required issuer')
    .option('--audience <aud>', 'accepted audience (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--leeway <seconds>', 'clock skew allowed for exp/nbf', String(DEFAULT_LEEWAY_SECONDS))
    .action(async (tokenArg: string, o: { jwks: string; issuer?: string; audience: string[]; leeway: string }) => {
      const token = tokenArg === '-' ? readFileSync(0, 'utf8').trim() : tokenArg;
      let text: string;
      if (/^https?:\/\//i.test(o.jwks)) {
        try {
          const res = await fetch(o.jwks, { signal: AbortSignal.timeout(10_000) });
          if (!res.ok) throw new Error(`answered ${res.status}`);
          text = await res.text();
        } catch (e) {
          throw new ZtmError('ZTM_CONFIG_IO', `cannot fetch the JWKS at ${o.jwks}: ${(e as Error).message}`);
        }
      } else {
        try {
          text = readFileSync(o.jwks, 'utf8');
        } catch (e) {
          throw new ZtmError('ZTM_CONFIG_IO', `cannot read --jwks ${o.jwks}: ${(e as Error).message}`);
        }
      }
      let keys: JwksKey[];
      try {
        keys = parseJwks(text);
      } catch (e) {
        throw new ZtmError('ZTM_USAGE', `--jwks ${o.jwks} is not a JWK Set: ${(e as Error).message}`);
      }
      if (!/^[0-9]+$/.test(o.leeway)) throw new ZtmError('ZTM_USAGE', `--leeway expects seconds, got "${o.leeway}"`);
      const out = verifyJwt(token, keys, { issuer: o.issuer, audiences: o.audience, nowSeconds: Math.floor(Date.now() / 1000), leewaySeconds: Number(o.leeway) });
      ctx.stdout.write(JSON.stringify(out) + '\n');
      ctx.exitCode = out.valid ? Exit.OK : Exit.FAILED;
    });
}
