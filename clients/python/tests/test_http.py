"""The client's HTTP/1.1 connection against a scripted server on a real socket: what it sends (a
body's pieces in order, with its length, over TLS too) and how it reads answers that
gradserve's server does not send but a proxy in front of it may (chunked bodies, HTTP/1.0, an
answer closed to mark its end, a kept-alive connection closed between requests)."""
import http.client
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest

from gradserve._http import Connection


CLOSE = b'<close>'


class Scripted:
    """Accepts one connection; for each request read, sends the next scripted answer (bytes), then
    closes the connection if the answer ends with CLOSE; an answer of None closes it at once."""

    def __init__(self, answers, tls=None):
        self.answers = list(answers)
        self.tls = tls
        self.handshake_error = None
        self.requests = []
        self.reads = 0
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.sock.accept()
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except ssl.SSLError as e:
                self.handshake_error = e
                conn.close()
                return
        buf = b''
        with conn:
            for answer in self.answers:
                while b'\r\n\r\n' not in buf:
                    chunk = conn.recv(65536)
                    self.reads += 1
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b'\r\n\r\n', 1)
                length = 0
                for line in head.split(b'\r\n')[1:]:
                    name, _, value = line.partition(b':')
                    if name.strip().lower() == b'content-length':
                        length = int(value)
                while len(buf) < length:
                    buf += conn.recv(65536)
                    self.reads += 1
                self.requests.append((head, buf[:length]))
                buf = buf[length:]
                if answer is None:
                    return
                conn.sendall(answer.removesuffix(CLOSE))
                if answer.endswith(CLOSE):
                    return

    def close(self):
        self.thread.join(5)
        self.sock.close()


class HttpTest(unittest.TestCase):
    def connect(self, answers):
        srv = Scripted(answers)
        self.addCleanup(srv.close)
        conn = Connection('127.0.0.1', srv.port, timeout=5)
        self.addCleanup(conn.close)
        return srv, conn

    def test_sends_the_pieces_of_a_body_in_order_with_its_length(self):
        ok = b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'
        srv, conn = self.connect([ok, ok])
        big = bytes(range(256)) * 1024  # past the size that is joined with the head
        conn.request('POST', '/x', [b'abc', memoryview(big), b'xyz'], {'Content-Type': 'application/octet-stream'})
        self.assertEqual(conn.getresponse('POST').read(), b'ok')
        conn.request('POST', '/y', [b'{"a":1}'], {'Content-Type': 'application/json'})
        self.assertEqual(conn.getresponse('POST').read(), b'ok')
        srv.close()
        (head1, body1), (head2, body2) = srv.requests
        self.assertTrue(head1.startswith(b'POST /x HTTP/1.1\r\n'))
        self.assertIn(b'Content-Length: %d' % (len(big) + 6), head1)
        self.assertEqual(body1, b'abc' + big + b'xyz')
        self.assertIn(b'\r\nHost: 127.0.0.1:%d' % srv.port, head2)
        self.assertEqual(body2, b'{"a":1}')

    def test_a_204_has_no_body_and_the_connection_stays_in_step(self):
        srv, conn = self.connect([b'HTTP/1.1 204 No Content\r\n\r\n', b'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ny'])
        conn.request('POST', '/x', [b'{}'], {'Content-Type': 'application/json'})
        answer = conn.getresponse('POST')
        self.assertEqual((answer.status, answer.read()), (204, b''))
        conn.request('GET', '/y', None, {})
        self.assertEqual(conn.getresponse('GET').read(), b'y')

    def test_reads_a_chunked_answer_with_trailers(self):
        chunked = (b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nx-a: 2\r\n\r\n'
                   b'4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\nTrailer: t\r\n\r\n')
        srv, conn = self.connect([chunked, b'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz'])
        conn.request('GET', '/c', None, {})
        answer = conn.getresponse('GET')
        self.assertEqual(answer.read(), b'Wikipedia ')
        self.assertEqual(answer.getheader('X-A'), '1, 2')
        # the connection is still in step: the next answer is read whole
        conn.request('GET', '/d', None, {})
        self.assertEqual(conn.getresponse('GET').read(), b'z')

    def test_an_answer_without_length_ends_when_the_server_closes(self):
        srv, conn = self.connect([b'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it' + CLOSE])
        conn.request('GET', '/', None, {})
        answer = conn.getresponse('GET')
        self.assertEqual(answer.read(), b'all of it')
        self.assertEqual(answer.getheader('connection'), 'close')

    def test_a_kept_alive_connection_closed_by_the_server_is_remote_disconnected(self):
        srv, conn = self.connect([b'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', None])
        conn.request('GET', '/', None, {})
        self.assertEqual(conn.getresponse('GET').status, 200)
        conn.request('GET', '/', None, {})
        with self.assertRaises(http.client.RemoteDisconnected):
            conn.getresponse('GET')

    def test_a_malformed_status_line_is_an_http_exception(self):
        srv, conn = self.connect([b'SMTP ready\r\n\r\n'])
        conn.request('GET', '/', None, {})
        with self.assertRaises(http.client.HTTPException):
            conn.getresponse('GET')

    def test_a_truncated_body_is_an_incomplete_read(self):
        srv, conn = self.connect([b'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort' + CLOSE])
        conn.request('GET', '/', None, {})
        with self.assertRaises(http.client.IncompleteRead):
            conn.getresponse('GET')


    def test_refuses_a_target_or_header_that_would_split_the_request(self):
        srv, conn = self.connect([b'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'])
        with self.assertRaises(http.client.InvalidURL):
            conn.request('GET', '/a HTTP/1.1\r\nX-Evil: 1\r\n\r\nGET /b', None, {})
        with self.assertRaises(ValueError):
            conn.request('GET', '/', None, {'Authorization': 'Bearer x\r\nX-Evil: 1'})
        # nothing was sent: the connection still carries one well-formed request
        conn.request('GET', '/ok', None, {})
        self.assertEqual(conn.getresponse('GET').status, 200)
        srv.close()
        self.assertEqual([h.split(b'\r\n')[0] for h, _ in srv.requests], [b'GET /ok HTTP/1.1'])

    def tls_server(self, answers):
        """A scripted server speaking TLS with a fresh self-signed certificate for 127.0.0.1; returns it
        and the certificate's path."""
        if not shutil.which('openssl'):
            self.skipTest('needs the openssl command to make a certificate')
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        key, cert = os.path.join(tmp, 'key.pem'), os.path.join(tmp, 'cert.pem')
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
                        '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
                       check=True, capture_output=True)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv = Scripted(answers, tls=ctx)
        self.addCleanup(srv.close)
        return srv, cert

    def test_speaks_tls_and_checks_the_certificate_against_the_host(self):
        srv, cert = self.tls_server([b'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes'])
        old = os.environ.get('SSL_CERT_FILE')
        os.environ['SSL_CERT_FILE'] = cert  # the client trusts this certificate, as a CA bundle
        self.addCleanup(lambda: os.environ.pop('SSL_CERT_FILE') if old is None else os.environ.__setitem__('SSL_CERT_FILE', old))
        big = bytes(range(256)) * 1024
        conn = Connection('127.0.0.1', srv.port, timeout=5, tls=True)
        self.addCleanup(conn.close)
        conn.request('POST', '/t', [b'a', big], {})
        self.assertEqual(conn.getresponse('POST').read(), b'yes')
        srv.close()
        self.assertEqual(srv.requests[0][1], b'a' + big)

    def test_refuses_a_certificate_it_does_not_trust(self):
        srv, _ = self.tls_server([b'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'])
        conn = Connection('127.0.0.1', srv.port, timeout=5, tls=True)
        self.addCleanup(conn.close)
        with self.assertRaises(ssl.SSLCertVerificationError):
            conn.request('GET', '/', None, {})
        srv.close()
        self.assertIn('unknown ca', str(srv.handshake_error).lower())


if __name__ == '__main__':
    unittest.main()
