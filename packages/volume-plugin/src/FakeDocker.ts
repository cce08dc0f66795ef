// DockerReconciler.test.ts imports the fake from here; it lives in src/testing/.
export * from './testing/FakeDocker';
