// The demo shop's routes: one CPU-heavy (checkout), one that mostly waits
// (catalog). Nothing here knows about tracing or profiling. server.js (CommonJS)
// and server.mjs (ES module) serve these same routes.
'use strict';
const crypto = require('node:crypto');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function priceBasket(items) {
  let total = 0;
  for (let i = 0; i < items * 50000; i++) total += Math.sqrt(i) * 1.0001;
  return total;
}

function signReceipt(text, rounds) {
  let digest = text;
  for (let i = 0; i < rounds; i++) digest = crypto.hash('sha256', digest);
  return digest;
}

async function checkout(items) {
  const total = priceBasket(items);
  await sleep(2); // the payment service
  return signReceipt(String(total), items * 800);
}

async function catalog() {
  await sleep(5); // the database
  await sleep(5); // the cache
  return JSON.stringify({ products: 42 });
}

async function handle(req, res) {
  const url = new URL(req.url ?? '/', 'http://localhost');
  try {
    if (url.pathname === '/checkout') res.end(await checkout(Number(url.searchParams.get('items') ?? '10')));
    else if (url.pathname === '/catalog') res.end(await catalog());
    else if (url.pathname === '/healthz') res.end('ok');
    else {
      res.statusCode = 404;
      res.end();
    }
  } catch (err) {
    res.statusCode = 500;
    res.end(String(err));
  }
}

module.exports = { handle, checkout, catalog, priceBasket, signReceipt };
