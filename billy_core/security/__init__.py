"""Who may do what on the broker, and who may read over HTTP.

    acls       the principals of one deployment and their ACLs, as data (pure)
    kafka      applies them: SCRAM credentials and ACLs through the Kafka Admin API
    tokens     the read API's tokens: stored hashed, compared in constant time, rotatable
    tenants    onboarding in one call: topics, credentials, ACLs, read token; and removal

Principals (DESIGN.md, Security) of a deployment with topic prefix P:

    P-tenant-<t>   its service: WRITE P.<t>.commands, READ P.<t>.results, groups "P.<t>."
    P-billing      the billing team: WRITE P.admin.commands, READ P.admin.results, groups "P.admin."
    P-warehouse    READ P.applied-services, P.wallets, P.acts, P.reconciliation,
                   groups "P.internal.warehouse."
    P-ledger, P-relay, P-sweeper, P-gateway, P-api   one per billy role, only what it needs
"""
