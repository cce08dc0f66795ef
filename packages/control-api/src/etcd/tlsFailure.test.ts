/** Which side of a TLS handshake with etcd failed, from real gRPC error texts (no etcd needed). */
import { etcdTlsFailure } from './EtcdConfigurationStore';

describe('etcdTlsFailure', () => {
  it('says "server" when we do not trust the etcd member certificate', () => {
    for (const m of [
      '14 UNAVAILABLE: No connection established. Last error: Error: unable to verify the first certificate; ' +
        'if the root CA is installed locally, try running Node.js with --use-system-ca.',
      '14 UNAVAILABLE: No connection established. Last error: Error: self-signed certificate in certificate chain',
      '14 UNAVAILABLE: No connection established. Last error: Error: certificate has expired',
      '14 UNAVAILABLE: No connection established. Last error: Error [ERR_TLS_CERT_ALTNAME_INVALID]: ' +
        "Hostname/IP does not match certificate's altnames: IP: 10.0.0.9 is not in the cert's list: 127.0.0.1",
      '14 UNAVAILABLE: Last error: Error: unable to get local issuer certificate',
    ]) {
      expect(etcdTlsFailure(m)).toBe('server');
    }
  });

  it('says "client" when the member refused our client certificate or got none', () => {
    for (const m of [
      '14 UNAVAILABLE: No connection established. Last error: 401D024F4E7F0000:error:0A000412:SSL ' +
        'routines:ssl3_read_bytes:ssl/tls alert bad certificate:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:918:' +
        'SSL alert number 42',
      'error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required: SSL alert number 116',
      'error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca: SSL alert number 48',
    ]) {
      expect(etcdTlsFailure(m)).toBe('client');
    }
  });

  it('says nothing about failures that are not TLS', () => {
    for (const m of [
      '14 UNAVAILABLE: No connection established. Last error: Failed to connect',
      '4 DEADLINE_EXCEEDED: Deadline exceeded',
      'connect ECONNREFUSED 127.0.0.1:2379',
    ]) {
      expect(etcdTlsFailure(m)).toBeUndefined();
    }
  });
});
