/** A throwaway self-signed server certificate for the gateway's HTTPS listener (demo, tests, benchmarks), made with openssl. */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export function devServerCert(dir: string, names: string[] = ['localhost'], base = 'gateway'): { certFile: string; keyFile: string } {
  const certFile = join(dir, `${base}-cert.pem`);
  const keyFile = join(dir, `${base}-key.pem`);
  const san = names.map((n) => (/^[0-9.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${names[0]}`, '-addext', `subjectAltName=${san}`],
    { stdio: 'ignore' },
  );
  return { certFile, keyFile };
}
