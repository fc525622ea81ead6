// ESLint (flat config): TypeScript rules on src/, test/ and bench/. Layer rules live in
// .dependency-cruiser.cjs (run by `npm run lint` too).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bench-data/**', '.lifeboat/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-control-regex': 'off',
      eqeqeq: ['error', 'always'],
    },
  },
  {
    // "No function over ~100 lines" (the team's style). Test files are exempt: their describe
    // blocks are lists of cases, not logic; so are migrations, lists of DDL statements.
    files: ['src/**/*.ts', 'bench/**/*.ts', 'test/**/*.ts', 'web/**/*.ts', 'web/**/*.tsx'],
    ignores: ['**/*.test.ts', 'src/store/migrations/**'],
    rules: { 'max-lines-per-function': ['error', { max: 100, skipBlankLines: true, skipComments: true }] },
  },
  {
    files: ['scripts/**/*.mjs', '*.js', '*.cjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', module: 'writable', require: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
