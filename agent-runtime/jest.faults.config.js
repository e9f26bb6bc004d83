/** The fault matrix (npm run test:faults): each fault injected into each topology run locally. */
const base = require('./jest.config.js');
module.exports = { ...base, testMatch: ['**/faults/*.fault.ts'], testTimeout: 120000, verbose: true };
