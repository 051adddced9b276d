// The demo service (CommonJS entry). PORT and HOST set where it listens.
'use strict';
const http = require('node:http');
const { handle } = require('./routes.js');

const server = http.createServer(handle);
server.listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? '0.0.0.0', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
