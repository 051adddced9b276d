/** The HTTP side every test receiver shares: a free loopback port, whole request bodies, a clean close. */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export type BodyHandler = (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => void;

export interface LoopbackServer {
  url: string;
  close(): Promise<void>;
}

export async function serveBodies(handle: BodyHandler): Promise<LoopbackServer> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, Buffer.concat(chunks), res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
    },
  };
}
