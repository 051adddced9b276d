// mocha's spec reporter, plus a JSON summary of the real results written to
// $MOCHA_SUMMARY_FILE, from which .ci/run prints its closing line.
'use strict';
const fs = require('node:fs');
const Mocha = require('mocha');

class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const file = process.env.MOCHA_SUMMARY_FILE;
    if (!file) return;
    const failedTitles = [];
    runner.on('fail', (test) => failedTitles.push(test.fullTitle()));
    runner.once('end', () => {
      const { passes = 0, failures = 0, pending = 0 } = this.stats;
      fs.writeFileSync(file, JSON.stringify({ passes, failures, pending, failedTitles }) + '\n');
    });
  }
}

module.exports = SummaryReporter;
