/**
 * The operator's own small CA and the webhook's serving certificate.
 * Keys come from node:crypto (fast, native); node-forge writes the certificates.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

export interface KeyPair {
  cert: string;
  key: string;
}

const DAY_MS = 86_400_000;

function newKey(): { pem: string; forgeKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(pem) as forge.pki.rsa.PrivateKey;
  return { pem, forgeKey, publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e) };
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f; // positive
  return bytes.toString('hex');
}

export function createCA(commonName: string, now: Date, validDays: number): KeyPair {
  const k = newKey();
  const cert = forge.pki.createCertificate();
  cert.publicKey = k.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(now.getTime() - 5 * 60_000);
  cert.validity.notAfter = new Date(now.getTime() + validDays * DAY_MS);
  const subject = [{ name: 'commonName', value: commonName }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(k.forgeKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: k.pem };
}

export function createServingCert(ca: KeyPair, dnsNames: string[], now: Date, validDays: number): KeyPair {
  const k = newKey();
  const caCert = forge.pki.certificateFromPem(ca.cert);
  const caKey = forge.pki.privateKeyFromPem(ca.key);
  const cert = forge.pki.createCertificate();
  cert.publicKey = k.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(now.getTime() - 5 * 60_000);
  cert.validity.notAfter = new Date(now.getTime() + validDays * DAY_MS);
  cert.setSubject([{ name: 'commonName', value: dnsNames[0]! }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: dnsNames.map((value) => (/^\d+\.\d+\.\d+\.\d+$/.test(value) ? { type: 7, ip: value } : { type: 2, value })) },
  ]);
  cert.sign(caKey as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: k.pem };
}

export interface CertInfo {
  notAfter: Date;
  names: string[];
}

export function inspect(certPem: string): CertInfo {
  const cert = forge.pki.certificateFromPem(certPem);
  const san = cert.getExtension('subjectAltName') as { altNames?: { value?: string; ip?: string }[] } | null;
  return { notAfter: cert.validity.notAfter, names: (san?.altNames ?? []).map((a) => a.ip ?? a.value ?? '') };
}

/** Whether a certificate must be replaced: expiring within renewBeforeDays, or missing a name. */
export function needsRenewal(certPem: string | undefined, now: Date, renewBeforeDays: number, names: string[] = []): boolean {
  if (certPem === undefined || certPem === '') return true;
  try {
    const info = inspect(certPem);
    return info.notAfter.getTime() - now.getTime() < renewBeforeDays * DAY_MS || names.some((n) => !info.names.includes(n));
  } catch {
    return true;
  }
}
