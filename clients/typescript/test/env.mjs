// What the test runner (clients/typescript/run.sh) sets for the tests in this folder.

/**
 * The environment variable `name`, which must be set and not empty.
 * @param {string} name
 * @returns {string}
 */
export function requiredEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set (run this through clients/typescript/run.sh)`);
  }
  return value;
}
