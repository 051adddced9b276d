// The demo service as an ES module entry: the same routes, loaded through
// `import`, so the agent's ES module hooks are what instrument node:http.
import http from 'node:http';
import routes from './routes.js';

const server = http.createServer(routes.handle);
server.listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? '0.0.0.0', () => {
  process.stdout.write(`listening (esm) ${server.address().port}\n`);
});
