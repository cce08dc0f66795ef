export * from './testing/fakes';
