/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }],
    // jose (the A2A SDK's JWS dependency) ships ES modules only: Node 20.19+ and 24 require() them,
    // jest's module loader on Node 20 cannot, so for tests they are compiled to CommonJS
    '/node_modules/jose/.+\\.js$': ['ts-jest', { tsconfig: { allowJs: true, module: 'commonjs', target: 'es2022', isolatedModules: true } }],
  },
  transformIgnorePatterns: ['/node_modules/(?!jose/)'],
  testTimeout: 60000,
  // Tests that start processes and servers must not share ports or CPU with each other.
  maxWorkers: 1,
};
