//! The validating side of [`Resolver`](super::Resolver): hickory's DNSSEC validator over a
//! bounded cache of raw answers shared by every validation, and the warm-up that asks for the
//! whole chain of trust of a name at once.
//!
//! hickory's validator (`DnssecDnsHandle`) sends its own queries (the NS walk that finds a zone
//! cut, the DS at the cut, the DNSKEY of each signer) one after the other, below its response
//! cache: every validation asks them again, and the glue in the additional section is validated
//! too. So a validated MX lookup of an unsigned domain cost about six round trips in a row. Here
//! those queries go through [`SharedAnswers`]: an answer is asked once while it is in flight and
//! reused while its TTL lasts (bounded, see [`MEMO_CAPACITY`]), the additional section and the
//! NS records of a positive answer's authority section are dropped (nothing we read needs them),
//! and [`Validating::warm`] asks the DS, DNSKEY and NS queries of every ancestor of a name in
//! parallel with the query itself, so the validator finds them answered or in flight.

use super::DnsError;
use super::generations::Generations;
use futures_util::future::{BoxFuture, FutureExt, Shared, join_all};
use futures_util::stream::{self, Stream};
use hickory_proto::dnssec::TrustAnchors;
use hickory_proto::op::{DnsRequest, DnsRequestOptions, DnsResponse, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::caching_client::CachingClient;
use hickory_resolver::config::{NameServerConfig, ResolverOpts};
use hickory_resolver::lookup::Lookup as HickoryLookup;
use hickory_resolver::net::dnssec::DnssecDnsHandle;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::{DnsHandle, FirstAnswer};
use hickory_resolver::net::{DnsError as ProtoDnsError, NetError, RetryDnsHandle};
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Raw answers kept at most per generation; two generations are kept (the current one and the
/// one before), so at most twice this many, whatever the number of domains checked. A check
/// uses a few dozen; a bulk scan reuses the answers of the zones its domains share.
pub const MEMO_CAPACITY: usize = 1024;

/// Validation results hickory's validator keeps (RRsets already validated, by query and
/// content). hickory's default is 1 048 576 entries, which a bulk scan never fills, so the memory
/// of a scan grew with every domain checked (about 1 KiB each); this many make it flat.
pub const VALIDATION_CACHE_CAPACITY: usize = 4096;

/// The longest a raw answer is reused, whatever its TTL.
pub const MEMO_MAX_TTL: Duration = Duration::from_secs(300);

type Answer = Result<DnsResponse, NetError>;
type SharedAnswer = Shared<BoxFuture<'static, Answer>>;

/// Name (lower case, fully qualified) and type of a query.
type Key = (String, RecordType);

struct Entry {
    answer: SharedAnswer,
    asked: Instant,
}

impl Entry {
    /// Whether the answer can still be handed out: in flight for less than `patience` (an
    /// answer whose askers all went away is not waited for), or complete and within its TTL.
    fn usable(&self, now: Instant, patience: Duration) -> bool {
        match self.answer.peek() {
            None => now < self.asked + patience,
            Some(answer) => {
                ttl_of(answer).is_some_and(|ttl| now < self.asked + ttl.min(MEMO_MAX_TTL))
            }
        }
    }
}

/// A [`DnsHandle`] that shares answers between identical queries (see the module text).
#[derive(Clone)]
pub(crate) struct SharedAnswers<H> {
    inner: H,
    memo: Arc<Mutex<Generations<Key, Entry>>>,
    patience: Duration,
}

impl<H: DnsHandle> SharedAnswers<H> {
    /// At most `capacity` answers per generation; an answer in flight for longer than `patience`
    /// (the query's time budget) is asked again.
    pub(crate) fn new(inner: H, capacity: usize, patience: Duration) -> Self {
        Self {
            inner,
            memo: Arc::new(Mutex::new(Generations::new(capacity))),
            patience,
        }
    }

    /// Answers held (in flight or complete), for tests.
    #[cfg(test)]
    fn held(&self) -> usize {
        let memo = self
            .memo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        memo.len()
    }

    /// The answer to `query`: the one already asked (in flight or complete, whatever its age,
    /// failures included), or a new one. For looking back at what the validator was told.
    fn settled(&self, query: Query, options: DnsRequestOptions) -> SharedAnswer {
        let key = (query.name().to_lowercase().to_ascii(), query.query_type());
        {
            let memo = self
                .memo
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(entry) = memo.both(&key).next() {
                return entry.answer.clone();
            }
        }
        self.answer(key, DnsRequest::from_query(query, options))
    }

    fn answer(&self, key: Key, request: DnsRequest) -> SharedAnswer {
        let now = Instant::now();
        let mut memo = self
            .memo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let patience = self.patience;
        if let Some(entry) = memo.current(&key).filter(|e| e.usable(now, patience)) {
            return entry.answer.clone();
        }
        let entry = match memo.take_previous(&key).filter(|e| e.usable(now, patience)) {
            Some(entry) => entry,
            None => Entry {
                answer: self
                    .inner
                    .send(request)
                    .first_answer()
                    .map(|answer| answer.map(strip))
                    .boxed()
                    .shared(),
                asked: now,
            },
        };
        let answer = entry.answer.clone();
        memo.insert(key, entry);
        answer
    }
}

impl<H: DnsHandle> DnsHandle for SharedAnswers<H> {
    type Response = Pin<Box<dyn Stream<Item = Answer> + Send>>;
    type Runtime = H::Runtime;

    fn is_verifying_dnssec(&self) -> bool {
        self.inner.is_verifying_dnssec()
    }

    fn send(&self, request: DnsRequest) -> Self::Response {
        let key = match (request.op_code, request.queries.as_slice()) {
            (OpCode::Query, [query]) => {
                (query.name().to_lowercase().to_ascii(), query.query_type())
            }
            _ => return Box::pin(self.inner.send(request)),
        };
        Box::pin(stream::once(self.answer(key, request)))
    }
}

/// Why the query `name` `rtype` got no answer the validator could use, or `None` when it got one
/// (records, or a NODATA / NXDOMAIN denial).
fn fetch_failure(name: &Name, rtype: RecordType, answer: &Answer) -> Option<String> {
    let what = format!("{rtype} {name}");
    match answer {
        Ok(_) => None,
        Err(NetError::Dns(ProtoDnsError::NoRecordsFound(no)))
            if matches!(
                no.response_code,
                ResponseCode::NoError | ResponseCode::NXDomain
            ) =>
        {
            None
        }
        Err(NetError::Dns(ProtoDnsError::NoRecordsFound(no))) => Some(format!(
            "the chain of trust could not be fetched: {what} was answered {}",
            no.response_code
        )),
        Err(NetError::Dns(ProtoDnsError::ResponseCode(code))) => Some(format!(
            "the chain of trust could not be fetched: {what} was answered {code}"
        )),
        Err(NetError::Timeout) => Some(format!(
            "the chain of trust could not be fetched: {what} timed out"
        )),
        Err(e) => Some(format!(
            "the chain of trust could not be fetched: {what}: {e}"
        )),
    }
}

/// The signer of the first RRSIG in the answer or authority section.
fn signer_of(response: &DnsResponse) -> Option<Name> {
    response
        .answers
        .iter()
        .chain(response.authorities.iter())
        .find_map(|r| match &r.data {
            RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::RRSIG(sig)) => {
                Some(sig.input().signer_name.clone())
            }
            _ => None,
        })
}

/// How long a REFUSED answer is reused. A refusal is the server's policy, not a passing failure
/// (RFC 9520 §3.2 asks resolvers to keep any resolution failure for at least a second): the
/// warm-up asks the DS and DNSKEY of every ancestor, and a server that refuses one of them (a
/// name outside its zones) would otherwise be asked again by every lookup below it.
pub(crate) const REFUSED_TTL: Duration = Duration::from_secs(5);

/// How long an answer may be reused: the smallest TTL of its records (answers and authority),
/// or the negative TTL of a NODATA/NXDOMAIN answer, or [`REFUSED_TTL`] for a refusal. `None`
/// for any other failure (SERVFAIL, timeout, ...), which is asked again next time.
fn ttl_of(answer: &Answer) -> Option<Duration> {
    let secs = match answer {
        Ok(response) => response
            .answers
            .iter()
            .chain(response.authorities.iter())
            .map(|r| r.ttl)
            .min()?,
        Err(NetError::Dns(ProtoDnsError::NoRecordsFound(no)))
            if no.response_code == ResponseCode::Refused =>
        {
            return Some(REFUSED_TTL);
        }
        Err(NetError::Dns(ProtoDnsError::ResponseCode(ResponseCode::Refused))) => {
            return Some(REFUSED_TTL);
        }
        Err(NetError::Dns(ProtoDnsError::NoRecordsFound(no))) => no.negative_ttl?,
        Err(_) => return None,
    };
    Some(Duration::from_secs(u64::from(secs)))
}

/// Drops what validation of the answer does not need and would otherwise validate, each with
/// its own chain of queries: the additional section (glue), and the NS records (with their
/// signatures) in the authority section of a positive answer. Negative answers keep their
/// authority section: its SOA and NSEC records are the proof.
fn strip(mut response: DnsResponse) -> DnsResponse {
    // Edits the decoded message only: the raw bytes kept with it are not read above this layer.
    response.additionals.clear();
    if !response.answers.is_empty() {
        response.authorities.retain(|r| !is_ns_or_its_signature(r));
    }
    response
}

fn is_ns_or_its_signature(record: &Record) -> bool {
    match &record.data {
        RData::NS(_) => true,
        RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::RRSIG(sig)) => {
            sig.input().type_covered == RecordType::NS
        }
        _ => false,
    }
}

type Raw = SharedAnswers<RetryDnsHandle<NameServerPool<TokioRuntimeProvider>>>;

/// hickory's validator and response cache over [`SharedAnswers`].
#[derive(Clone)]
pub(crate) struct Validating {
    client: CachingClient<DnssecDnsHandle<Raw>>,
    raw: Raw,
    options: DnsRequestOptions,
}

impl Validating {
    /// A validating resolver asking `servers` (the system's when empty), starting from `anchors`.
    pub(crate) fn new(
        servers: &[std::net::SocketAddr],
        timeout: Duration,
        anchors: Arc<TrustAnchors>,
    ) -> Result<Self, DnsError> {
        let config_err = |name: &str, message: String| DnsError::Other {
            name: name.into(),
            rtype: "config".into(),
            message,
        };
        let (servers, mut opts): (Vec<NameServerConfig>, ResolverOpts) = if servers.is_empty() {
            let (config, opts) = hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| config_err("/etc/resolv.conf", e.to_string()))?;
            (config.name_servers, opts)
        } else {
            (super::server_configs(servers), ResolverOpts::default())
        };
        opts.timeout = timeout;
        opts.attempts = 1;
        opts.validate = true;
        let tls = TlsConfig::new().map_err(|e| config_err("", e.to_string()))?;
        let attempts = opts.attempts;
        let mut options = DnsRequestOptions::default();
        options.recursion_desired = opts.recursion_desired;
        options.use_edns = opts.edns0;
        options.edns_payload_len = opts.edns_payload_len;
        options.case_randomization = opts.case_randomization;
        options.edns_set_dnssec_ok = true;
        let (cache_size, preserve) = (opts.cache_size, opts.preserve_intermediates);
        let cx = Arc::new(PoolContext::new(opts, tls));
        let pool = NameServerPool::from_config(servers, cx, TokioRuntimeProvider::default());
        let patience = timeout + Duration::from_secs(1);
        let raw = SharedAnswers::new(RetryDnsHandle::new(pool, attempts), MEMO_CAPACITY, patience);
        let validator = DnssecDnsHandle::with_trust_anchor(raw.clone(), anchors)
            .validation_cache_size(VALIDATION_CACHE_CAPACITY);
        Ok(Self {
            client: CachingClient::new(cache_size, validator, preserve),
            raw,
            options,
        })
    }

    /// The validated answer to `name` (fully qualified) `rtype`. The chain of trust of `name`
    /// is asked for at the same time ([`Validating::warm`], in its own task: the answer does not
    /// wait for the warm-up, and the warm-up's queries complete for whoever needs them next).
    pub(crate) async fn lookup(
        &self,
        name: &Name,
        rtype: RecordType,
    ) -> Result<HickoryLookup, NetError> {
        let this = self.clone();
        let owned = name.clone();
        tokio::spawn(async move { this.warm(&owned).await });
        // The validation runs in a task of its own: hickory's validator recurses (a DS lookup
        // validates its own DS, up the chain), and when every answer is already at hand the whole
        // recursion runs in one poll. On the caller's stack, under a whole check, that overflowed
        // a 2 MiB test thread in a debug build; a task starts from the scheduler's shallow stack.
        let client = self.client.clone();
        let (query, options) = (Query::query(name.clone(), rtype), self.options);
        tokio::spawn(async move { client.lookup(query, options).await })
            .await
            .unwrap_or_else(|e| Err(NetError::from(format!("the validation task failed: {e}"))))
    }

    /// Why an answer the validator found bogus could not have been validated at all, or `None`
    /// when the chain of trust was fetched and the answer really is bogus (RFC 4035 §5.5 vs.
    /// "indeterminate"). hickory's validator calls both bogus; here the chain is walked again
    /// over the raw answers it used (still in [`SharedAnswers`], so this costs no query in the
    /// usual case): the answer's signer, that zone's DNSKEY RRset, its DS RRset at the parent,
    /// the parent's DNSKEY RRset, and so on up to the root. Any of those that failed (SERVFAIL,
    /// REFUSED, timeout, network error), or a root DNSKEY RRset without signatures (a resolver
    /// that strips them), means the validation could not be made.
    pub(crate) async fn unfetchable_chain(&self, name: &Name, rtype: RecordType) -> Option<String> {
        let ask = |name: &Name, rtype: RecordType| {
            self.raw
                .settled(Query::query(name.clone(), rtype), self.options)
        };
        let root_keys = ask(&Name::root(), RecordType::DNSKEY).await;
        if let Some(why) = fetch_failure(&Name::root(), RecordType::DNSKEY, &root_keys) {
            return Some(why);
        }
        if let Ok(keys) = &root_keys
            && !keys.answers.is_empty()
            && signer_of(keys).is_none()
        {
            return Some(
                "the resolver strips DNSSEC signatures (the root DNSKEY RRset came without RRSIG)"
                    .to_owned(),
            );
        }
        let answer = ask(name, rtype).await;
        if let Some(why) = fetch_failure(name, rtype, &answer) {
            return Some(why);
        }
        let mut zone = answer.as_ref().ok().and_then(signer_of)?;
        // Each step goes up at least one label, so this ends at the root.
        for _ in 0..=name.num_labels() {
            let keys = ask(&zone, RecordType::DNSKEY).await;
            if let Some(why) = fetch_failure(&zone, RecordType::DNSKEY, &keys) {
                return Some(why);
            }
            if zone.is_root() {
                return None;
            }
            let ds = ask(&zone, RecordType::DS).await;
            if let Some(why) = fetch_failure(&zone, RecordType::DS, &ds) {
                return Some(why);
            }
            match ds.as_ref().ok().and_then(signer_of) {
                Some(parent)
                    if parent.num_labels() < zone.num_labels() && parent.zone_of(&zone) =>
                {
                    zone = parent;
                }
                _ => return None,
            }
        }
        None
    }

    /// Asks, all at once, the queries the validator may make for an answer at `name`: for
    /// every ancestor of `name` below the top-level domain, its NS RRset (the validator walks
    /// up the NS RRsets to find the zone cut of an unsigned answer); for every ancestor
    /// including the top-level domain, its DS and DNSKEY RRsets (except at `_` labels); and the
    /// root's DNSKEY RRset.
    /// The answers land in [`SharedAnswers`] unvalidated; the validator validates what it uses.
    pub(crate) async fn warm(&self, name: &Name) {
        let mut queries = Vec::new();
        let mut n = name.clone();
        while !n.is_root() {
            if n.num_labels() > 1 {
                queries.push(Query::query(n.clone(), RecordType::NS));
            }
            // `_25._tcp` and the like are not zone cuts in practice: if one is, the validator
            // asks for its keys itself.
            if !n.iter().next().is_some_and(|label| label.starts_with(b"_")) {
                queries.push(Query::query(n.clone(), RecordType::DS));
                queries.push(Query::query(n.clone(), RecordType::DNSKEY));
            }
            n = n.base_name();
        }
        queries.push(Query::query(Name::root(), RecordType::DNSKEY));
        join_all(
            queries
                .into_iter()
                .map(|q| self.raw.lookup(q, self.options).first_answer()),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers every query with one A record of TTL `ttl`, counting the queries.
    #[derive(Clone)]
    struct Counting {
        sent: Arc<AtomicUsize>,
        ttl: u32,
        refuse: bool,
    }

    impl DnsHandle for Counting {
        type Response = Pin<Box<dyn Stream<Item = Answer> + Send>>;
        type Runtime = TokioRuntimeProvider;

        fn send(&self, request: DnsRequest) -> Self::Response {
            self.sent.fetch_add(1, Ordering::Relaxed);
            if self.refuse {
                let refused = NetError::Dns(ProtoDnsError::ResponseCode(ResponseCode::Refused));
                return Box::pin(stream::once(async move { Err(refused) }));
            }
            let mut message = hickory_proto::op::Message::query();
            let query = request.queries[0].clone();
            let name = query.name().clone();
            message.add_query(query);
            message.add_answer(Record::from_rdata(
                name.clone(),
                self.ttl,
                RData::A(hickory_proto::rr::rdata::A::new(127, 0, 0, 1)),
            ));
            message.add_authority(Record::from_rdata(
                name.clone(),
                self.ttl,
                RData::NS(hickory_proto::rr::rdata::NS(name.clone())),
            ));
            message.add_additional(Record::from_rdata(
                name,
                self.ttl,
                RData::A(hickory_proto::rr::rdata::A::new(127, 0, 0, 2)),
            ));
            let response = DnsResponse::from_message(message.into_response());
            Box::pin(stream::once(async move {
                response.map_err(|e| NetError::from(e.to_string()))
            }))
        }
    }

    fn counting(ttl: u32, capacity: usize) -> (SharedAnswers<Counting>, Arc<AtomicUsize>) {
        counting_with(ttl, capacity, false)
    }

    fn counting_with(
        ttl: u32,
        capacity: usize,
        refuse: bool,
    ) -> (SharedAnswers<Counting>, Arc<AtomicUsize>) {
        let sent = Arc::new(AtomicUsize::new(0));
        let inner = Counting {
            sent: Arc::clone(&sent),
            ttl,
            refuse,
        };
        (
            SharedAnswers::new(inner, capacity, Duration::from_secs(5)),
            sent,
        )
    }

    fn ask(h: &SharedAnswers<Counting>, name: &str) -> impl Future<Output = Answer> + use<> {
        let query = Query::query(name.parse().expect("name"), RecordType::A);
        h.lookup(query, DnsRequestOptions::default()).first_answer()
    }

    #[tokio::test]
    async fn an_answer_is_asked_once_while_its_ttl_lasts() {
        let (h, sent) = counting(300, 16);
        let (a, b) = tokio::join!(ask(&h, "a.test."), ask(&h, "A.test."));
        assert!(a.is_ok() && b.is_ok());
        ask(&h, "a.test.").await.expect("answer");
        assert_eq!(sent.load(Ordering::Relaxed), 1, "one query for three asks");
        ask(&h, "b.test.").await.expect("answer");
        assert_eq!(sent.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn an_expired_answer_is_asked_again() {
        let (h, sent) = counting(0, 16);
        ask(&h, "a.test.").await.expect("answer");
        ask(&h, "a.test.").await.expect("answer");
        assert_eq!(sent.load(Ordering::Relaxed), 2, "TTL 0: not reused");
    }

    #[tokio::test]
    async fn a_refusal_is_reused_for_a_few_seconds() {
        let (h, sent) = counting_with(300, 16, true);
        assert!(ask(&h, "a.test.").await.is_err());
        assert!(ask(&h, "a.test.").await.is_err());
        assert_eq!(sent.load(Ordering::Relaxed), 1, "the refusal was reused");
        let refused = Err(NetError::Dns(ProtoDnsError::ResponseCode(
            ResponseCode::Refused,
        )));
        assert_eq!(ttl_of(&refused), Some(REFUSED_TTL));
        let servfail = Err(NetError::Dns(ProtoDnsError::ResponseCode(
            ResponseCode::ServFail,
        )));
        assert_eq!(ttl_of(&servfail), None, "other failures are asked again");
    }

    #[tokio::test]
    async fn glue_and_authority_ns_of_a_positive_answer_are_dropped() {
        let (h, _) = counting(300, 16);
        let answer = ask(&h, "a.test.").await.expect("answer");
        assert_eq!(answer.answers.len(), 1);
        assert!(answer.additionals.is_empty(), "{:?}", answer.additionals);
        assert!(answer.authorities.is_empty(), "{:?}", answer.authorities);
    }

    #[tokio::test]
    async fn memory_is_bounded_by_two_generations() {
        let (h, sent) = counting(300, 8);
        for i in 0..100 {
            ask(&h, &format!("d{i}.test.")).await.expect("answer");
            assert!(h.held() <= 16, "{} answers held after {i}", h.held());
        }
        assert_eq!(sent.load(Ordering::Relaxed), 100);
        // The most recent answers are still there.
        ask(&h, "d99.test.").await.expect("answer");
        assert_eq!(sent.load(Ordering::Relaxed), 100);
    }
}
