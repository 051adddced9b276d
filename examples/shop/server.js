// The demo service: a tiny shop with one CPU-heavy route and one that mostly
// waits. Nothing in it knows about tracing or profiling.
'use strict';
const http = require('node:http');
const crypto = require('node:crypto');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function priceBasket(items) {
  let total = 0;
  for (let i = 0; i < items * 50000; i++) total += Math.sqrt(i) * 1.0001;
  return total;
}

function signReceipt(text, rounds) {
  let digest = text;
  for (let i = 0; i < rounds; i++) digest = crypto.createHash('sha256').update(digest).digest('hex');
  return digest;
}

async function checkout(items) {
  const total = priceBasket(items);
  await sleep(2); // the payment service
  return signReceipt(String(total), items * 400);
}

async function catalog() {
  await sleep(5); // the database
  await sleep(5); // the cache
  return JSON.stringify({ products: 42 });
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  try {
    if (url.pathname === '/checkout') res.end(await checkout(Number(url.searchParams.get('items') ?? '10')));
    else if (url.pathname === '/catalog') res.end(await catalog());
    else if (url.pathname === '/healthz') res.end('ok');
    else { res.statusCode = 404; res.end(); }
  } catch (err) {
    res.statusCode = 500;
    res.end(String(err));
  }
});

server.listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? '0.0.0.0', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
