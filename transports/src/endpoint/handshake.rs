//! The connection handshake: three sealed control frames that bind a fresh stream to both
//! nodes' identities and to fresh random challenges.
//!
//! ```text
//! dialer                                   acceptor
//!   Hello { listen, challenge: a }  --->
//!                                   <---   Welcome { echo: a, challenge: b }
//!   Ack { echo: b }                 --->
//!   data frames ...                 --->
//! ```
//!
//! Each side proves it holds a cluster key by sealing the other's fresh challenge, so a
//! recorded connection replayed into a new one fails at the handshake (the stream decoder's
//! per-stream sequence check covers replays *within* a stream). The node id and incarnation
//! come from the authenticated frame header; `listen` tells the acceptor where to dial back.

use std::net::SocketAddr;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::{Deserialize, Serialize};

use super::LinkError;
use crate::codec::Codec;
use crate::frame::{Frame, FrameHeader, FrameKind};
use crate::stream::StreamDecoder;

/// A handshake message, postcard-encoded in a [`FrameKind::Control`] frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Handshake {
    Hello {
        listen: SocketAddr,
        challenge: [u8; 16],
    },
    Welcome {
        echo: [u8; 16],
        challenge: [u8; 16],
    },
    Ack {
        echo: [u8; 16],
    },
}

impl Handshake {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Serializing this enum into a Vec cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a handshake message from untrusted bytes; never panics.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Handshake, LinkError> {
        postcard::from_bytes(bytes).map_err(|_| LinkError::Handshake("undecodable message"))
    }
}

/// What the acceptor's handshake established about the dialer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    pub(crate) header: FrameHeader,
    pub(crate) listen: SocketAddr,
}

/// Runs the dialer's side; returns the acceptor's authenticated header. Frames after the
/// handshake stay in `decoder`.
pub(crate) async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    codec: &mut Codec,
    decoder: &mut StreamDecoder,
    listen: SocketAddr,
) -> Result<FrameHeader, LinkError> {
    let mine = challenge()?;
    send(
        stream,
        codec,
        &Handshake::Hello {
            listen,
            challenge: mine,
        },
    )
    .await?;
    let mut buf = [0; 4_096];
    let frame = read_frame(stream, decoder, codec, &mut buf).await?;
    let Handshake::Welcome { echo, challenge } = control(&frame)? else {
        return Err(LinkError::Handshake("expected Welcome"));
    };
    if echo != mine {
        return Err(LinkError::Handshake("wrong challenge echoed"));
    }
    send(stream, codec, &Handshake::Ack { echo: challenge }).await?;
    Ok(frame.header)
}

/// Runs the acceptor's side.
pub(crate) async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    codec: &mut Codec,
    decoder: &mut StreamDecoder,
) -> Result<Peer, LinkError> {
    let mut buf = [0; 4_096];
    let frame = read_frame(stream, decoder, codec, &mut buf).await?;
    let Handshake::Hello { listen, challenge } = control(&frame)? else {
        return Err(LinkError::Handshake("expected Hello"));
    };
    let mine = self::challenge()?;
    send(
        stream,
        codec,
        &Handshake::Welcome {
            echo: challenge,
            challenge: mine,
        },
    )
    .await?;
    let ack = read_frame(stream, decoder, codec, &mut buf).await?;
    match control(&ack)? {
        Handshake::Ack { echo } if echo == mine => Ok(Peer {
            header: frame.header,
            listen,
        }),
        _ => Err(LinkError::Handshake("expected Ack with our challenge")),
    }
}

/// Reads until `decoder` yields a frame.
pub(crate) async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    decoder: &mut StreamDecoder,
    codec: &mut Codec,
    buf: &mut [u8],
) -> Result<Frame, LinkError> {
    loop {
        if let Some(frame) = decoder.next_frame(codec)? {
            return Ok(frame);
        }
        let n = stream.read(buf).await?;
        if n == 0 {
            return Err(LinkError::Closed);
        }
        decoder.push(&buf[..n]);
    }
}

async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    codec: &mut Codec,
    message: &Handshake,
) -> Result<(), LinkError> {
    let frame = codec.seal_stream_frame(FrameKind::Control, &message.encode())?;
    stream.write_all(&frame).await?;
    stream.flush().await?;
    Ok(())
}

fn control(frame: &Frame) -> Result<Handshake, LinkError> {
    if frame.header.kind != FrameKind::Control {
        return Err(LinkError::Handshake("expected a control frame"));
    }
    Handshake::decode(&frame.payload)
}

fn challenge() -> Result<[u8; 16], LinkError> {
    let mut bytes = [0; 16];
    crate::keyring::fill_random(&mut bytes).map_err(|_| LinkError::Handshake("no randomness"))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn messages_round_trip() {
        let messages = [
            Handshake::Hello {
                listen: "[::1]:7946".parse().unwrap(),
                challenge: [7; 16],
            },
            Handshake::Welcome {
                echo: [1; 16],
                challenge: [2; 16],
            },
            Handshake::Ack { echo: [3; 16] },
        ];
        for message in messages {
            assert_eq!(Handshake::decode(&message.encode()).unwrap(), message);
        }
    }

    #[test]
    fn fuzz_handshake_decode() {
        bolero::check!()
            .with_iterations(2_000)
            .for_each(|bytes: &[u8]| {
                let _ = Handshake::decode(bytes);
            });
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Handshake::decode(&bytes);
        }

        #[test]
        fn hello_round_trips(port: u16, challenge: [u8; 16]) {
            let message = Handshake::Hello { listen: SocketAddr::from(([127, 0, 0, 1], port)), challenge };
            prop_assert_eq!(Handshake::decode(&message.encode()).unwrap(), message);
        }
    }
}
