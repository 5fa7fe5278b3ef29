"""moto's server with the CloudFront and ACM rules moto skips, so the AWS domain tests mean something.

Run it as ``python -m tests.moto_rules <moto.server's arguments>``: it patches moto's backends in this
process, then runs moto's own server. Every rule's state lives on moto's own objects (a distribution's ETag
and deploy time, a certificate's names), so moto's reset endpoint clears it with the rest.

CloudFront (moto 5.2 keeps one ETag forever, ignores IfMatch's value, reports every distribution Deployed at
once and accepts any aliases with any certificate):
- UpdateDistribution and DeleteDistribution need IfMatch equal to the current ETag (``PreconditionFailed``),
  and every successful update gives the distribution a new ETag;
- an alias (case-insensitive) is on one distribution at most (``CNAMEAlreadyExists``);
- aliases need an ACM certificate of us-east-1 that is ISSUED and covers every alias, served sni-only with a
  MinimumProtocolVersion (``InvalidViewerCertificate``);
- at most ``MOTO_RULES_MAX_ALIASES`` aliases per distribution (``TooManyDistributionCNAMEs``) and
  ``MOTO_RULES_MAX_DISTRIBUTIONS`` distributions (``TooManyDistributions``);
- a distribution is InProgress after a create or an update, Deployed ``MOTO_RULES_DEPLOY_SECONDS`` later; a
  delete needs it disabled and Deployed (``DistributionNotDisabled``).

ACM (moto 5.2 deletes certificates in use and issues every requested certificate after
``MOTO_ACM_VALIDATION_WAIT`` seconds, whatever DNS holds, with one validation record for every name):
- a certificate a distribution names cannot be deleted (``ResourceInUseException``);
- at most ``MOTO_RULES_NAMES_PER_CERTIFICATE`` names per certificate and ``MOTO_RULES_MAX_CERTIFICATES``
  certificates (``LimitExceededException``);
- each name has its own validation record (a wildcard shares its apex's), and a name is validated once that
  record is in a public moto Route 53 zone that covers it; a name no moto zone covers (its DNS is elsewhere,
  which nothing offline can see) is validated after ``MOTO_ACM_VALIDATION_WAIT`` seconds (1 by default here,
  fractions allowed). The certificate is ISSUED when every name is validated, VALIDATION_TIMED_OUT when it
  is still pending ``MOTO_RULES_VALIDATION_TIMEOUT_SECONDS`` after its request (72 h by default, as on AWS);
- DescribeCertificate shows a name's validation record only ``MOTO_RULES_RECORD_SECONDS`` after the request
  (0 by default; AWS takes a few seconds).
"""

from __future__ import annotations

import os

from moto import settings as moto_settings

from tests.moto_rules.acm import patch_acm
from tests.moto_rules.cloudfront import patch_cloudfront


def install() -> None:
    """Patch moto's CloudFront and ACM backends in this process (before its server handles a request)."""
    moto_settings.ACM_VALIDATION_WAIT = float(os.environ.get("MOTO_ACM_VALIDATION_WAIT", "1"))  # type: ignore[assignment]
    patch_cloudfront()
    patch_acm()
