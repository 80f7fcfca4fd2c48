// superstep on Azure Container Apps (ACA) with Dapr.
//
//   az deployment group create -g <rg> -f deploy/aca/main.bicep \
//     -p @deploy/aca/main.parameters.json \
//     -p redisPassword="$REDIS_PASSWORD" apiToken="$SUPERSTEP_API_TOKEN"
//
// Creates: a Log Analytics workspace, a Container Apps environment, the Dapr components
// "statestore" and "pubsub" (ACA component schema: componentType/version/metadata/
// secrets/scopes, scoped to the Dapr app ids below), optional ACA resiliency policies,
// the API/coordinator container app and one container app per executor pool.
// Redis is not created here: pass an existing one (e.g. Azure Cache for Redis, TLS port 6380).
//
// Tokens: clients of the API send Authorization: Bearer <apiToken> (SUPERSTEP_API_TOKEN, an
// ACA secret of the API app). The sidecar's token to the apps is ACA's: with Dapr enabled,
// ACA puts APP_API_TOKEN in the app container and daprd sends it as dapr-api-token on every
// call to the app, so this template does not set APP_API_TOKEN.
// ACA runs its own Dapr build (docs/deploy.md, "ACA's Dapr version").

targetScope = 'resourceGroup'

@description('Azure region of every resource.')
param location string = resourceGroup().location

@description('Prefix of the resource names and of the Dapr app ids: <prefix>-api, <prefix>-executor-<pool>. Container app names are at most 32 characters.')
@minLength(2)
@maxLength(12)
param appPrefix string = 'superstep'

@description('The superstep image (deploy/Dockerfile, or an image derived from it that adds your workflow code).')
param image string

@description('Registry server of the image, e.g. myregistry.azurecr.io; empty for a public image.')
param registryServer string = ''

@description('Registry user name; empty for a public image.')
param registryUsername string = ''

@description('Registry password (with registryUsername).')
@secure()
param registryPassword string = ''

@description('Redis host:port, e.g. myredis.redis.cache.windows.net:6380.')
param redisHost string

@description('Redis password (access key). Held as a secret of the Dapr components and of the pool apps (for the scale rule).')
@secure()
param redisPassword string

@description('Connect to Redis over TLS (Azure Cache for Redis: true, port 6380).')
param redisEnableTls bool = true

@description('SUPERSTEP_WORKFLOWS: module:attr[,module:attr...] of the served workflows, importable in the image. The same on every app.')
param workflows string

@description('SUPERSTEP_NAMESPACE: prefix of every topic and state key. The same on every app; deployments sharing a Redis differ here.')
param superstepNamespace string = 'superstep'

@description('SUPERSTEP_DEADLINE_S: seconds the coordinator waits for a result before publishing an activation again.')
param deadlineSeconds string = '10'

@description('SUPERSTEP_HEARTBEAT_S: seconds between executor host heartbeats.')
param heartbeatSeconds string = '2'

@description('SUPERSTEP_HOST_TTL_S: a host whose heartbeat is older than this is considered gone.')
param hostTtlSeconds string = '6'

@description('Port the app listens on inside the container (uvicorn --port and dapr.appPort). Not 3500/50001: the Dapr sidecar uses those.')
param appPort int = 8000

@description('Expose the API outside the environment (HTTPS only; clients send Authorization: Bearer <apiToken>).')
param apiIngressExternal bool = false

@description('SUPERSTEP_API_TOKEN: the bearer token clients of the HTTP API must send. Held as an ACA secret of the API app.')
@secure()
@minLength(16)
param apiToken string

@description('Request body limit in MiB: the Dapr sidecar\'s (dapr.httpMaxRequestSize, in MB) and the apps\' own (SUPERSTEP_MAX_BODY_BYTES). 4 is daprd\'s default.')
@minValue(1)
param maxBodyMiB int = 4

@description('Minimum API replicas: at least 1, the coordinator\'s deadline reminders need a running replica.')
@minValue(1)
param apiMinReplicas int = 1

@description('Maximum API replicas.')
param apiMaxReplicas int = 3

@description('Executor pools: name (SUPERSTEP_POOL), labels (SUPERSTEP_LABELS, k=v,...), minReplicas (at least 1 is used), maxReplicas.')
param pools array = [
  {
    name: 'default'
    labels: ''
    minReplicas: 1
    maxReplicas: 5
  }
  {
    name: 'analysis'
    labels: 'tier=analysis'
    minReplicas: 1
    maxReplicas: 5
  }
]

@description('Scale rule target: unacknowledged activations (Redis Streams pending entries) per pool replica.')
param pendingEntriesPerReplica int = 20

@description('Create ACA Dapr component resiliency policies (a preview API) mirroring components/resiliency.yaml.')
param deployResiliencyPolicies bool = true

var stateStoreName = 'statestore'
var pubsubName = 'pubsub'
var apiAppId = '${appPrefix}-api'
// A pool's container app (and Dapr app id) is <appPrefix>-executor-<pool name>. ACA takes
// at most 32 characters, lower case letters, digits and '-': a pool whose name does not
// fit fails the deployment before anything is created, naming the pool.
var containerAppNameMax = 32
var poolAppNames = [for pool in pools: '${appPrefix}-executor-${pool.name}']
var poolNameTooLong = [for (pool, i) in pools: 'pool \'${pool.name}\': its container app name \'${poolAppNames[i]}\' has ${length(poolAppNames[i])} characters, over the ${containerAppNameMax} Azure Container Apps allows; with appPrefix \'${appPrefix}\' a pool name has at most ${containerAppNameMax - length('${appPrefix}-executor-')}']
var poolNameBadCharacters = [for pool in pools: 'pool \'${pool.name}\': a container app name takes lower case letters, digits and \'-\' only']
var poolAppIds = [for (pool, i) in pools: length(poolAppNames[i]) > containerAppNameMax ? fail(poolNameTooLong[i]) : (toLower(pool.name) != pool.name || contains(pool.name, '_') || contains(pool.name, '.') ? fail(poolNameBadCharacters[i]) : poolAppNames[i])]
var daprAppIds = concat([apiAppId], poolAppIds)
var tls = redisEnableTls ? 'true' : 'false'

var registrySecrets = empty(registryUsername) ? [] : [
  {
    name: 'registry-password'
    value: registryPassword
  }
]
var registries = empty(registryUsername) ? [] : [
  {
    server: registryServer
    username: registryUsername
    passwordSecretRef: 'registry-password'
  }
]

// Settings every app must share.
var commonEnv = [
  {
    name: 'SUPERSTEP_WORKFLOWS'
    value: workflows
  }
  {
    name: 'SUPERSTEP_NAMESPACE'
    value: superstepNamespace
  }
  {
    name: 'SUPERSTEP_STATESTORE'
    value: stateStoreName
  }
  {
    name: 'SUPERSTEP_PUBSUB'
    value: pubsubName
  }
  {
    name: 'SUPERSTEP_DEADLINE_S'
    value: deadlineSeconds
  }
  {
    name: 'SUPERSTEP_HEARTBEAT_S'
    value: heartbeatSeconds
  }
  {
    name: 'SUPERSTEP_HOST_TTL_S'
    value: hostTtlSeconds
  }
  {
    // the apps' body limit, equal to the sidecar's httpMaxRequestSize
    name: 'SUPERSTEP_MAX_BODY_BYTES'
    value: string(maxBodyMiB * 1048576)
  }
]

// Dapr app health checks (dapr.appHealth, API version 2025-02-02-preview and later): a dead
// or hung app is taken out of actor placement and of its consumer group; without them its
// sidecar keeps both. /healthz is open (no token). The same values as dapr.yaml and the
// Kubernetes annotations.
var daprAppHealth = {
  enabled: true
  path: '/healthz'
  probeIntervalSeconds: 1
  probeTimeoutMilliseconds: 500
  threshold: 2
}

// The port opens only after start-up, which waits for the Dapr sidecar.
var probes = [
  {
    type: 'Startup'
    httpGet: {
      path: '/healthz'
      port: appPort
    }
    initialDelaySeconds: 5
    periodSeconds: 10
    failureThreshold: 10
  }
  {
    type: 'Readiness'
    httpGet: {
      path: '/readyz'
      port: appPort
    }
    periodSeconds: 10
    failureThreshold: 3
  }
  {
    type: 'Liveness'
    httpGet: {
      path: '/healthz'
      port: appPort
    }
    periodSeconds: 20
    timeoutSeconds: 5
    failureThreshold: 6
  }
]

resource logs 'Microsoft.OperationalInsights/workspaces@2022-10-01' = {
  name: '${appPrefix}-logs'
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource env 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: '${appPrefix}-env'
  location: location
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logs.properties.customerId
        sharedKey: logs.listKeys().primarySharedKey
      }
    }
  }
}

// Dapr components in the ACA schema (not the Kubernetes CRD): the resource name is the
// component name; secretRef names an entry of the component's own secrets; scopes are
// Dapr app ids.
resource statestore 'Microsoft.App/managedEnvironments/daprComponents@2024-03-01' = {
  parent: env
  name: stateStoreName
  properties: {
    componentType: 'state.redis'
    version: 'v1'
    ignoreErrors: false
    initTimeout: '10s'
    secrets: [
      {
        name: 'redis-password'
        value: redisPassword
      }
    ]
    metadata: [
      {
        name: 'redisHost'
        value: redisHost
      }
      {
        name: 'redisPassword'
        secretRef: 'redis-password'
      }
      {
        name: 'enableTLS'
        value: tls
      }
      {
        // exactly one state component carries this: actor state of coordinator and executors
        name: 'actorStateStore'
        value: 'true'
      }
      {
        // keys shared by every app (the default prefix is the app id)
        name: 'keyPrefix'
        value: 'name'
      }
    ]
    scopes: daprAppIds
  }
}

resource pubsub 'Microsoft.App/managedEnvironments/daprComponents@2024-03-01' = {
  parent: env
  name: pubsubName
  properties: {
    componentType: 'pubsub.redis'
    version: 'v1'
    ignoreErrors: false
    initTimeout: '10s'
    secrets: [
      {
        name: 'redis-password'
        value: redisPassword
      }
    ]
    metadata: [
      {
        name: 'redisHost'
        value: redisHost
      }
      {
        name: 'redisPassword'
        secretRef: 'redis-password'
      }
      {
        name: 'enableTLS'
        value: tls
      }
      {
        // must exceed the longest activation, else a slow delivery is delivered twice
        name: 'processingTimeout'
        value: '60s'
      }
      {
        name: 'redeliverInterval'
        value: '10s'
      }
      {
        // deliveries in flight per subscription (Dapr's default 10), as in components/pubsub.yaml
        name: 'concurrency'
        value: '100'
      }
      {
        // caps each stream (Redis keeps acknowledged entries): see components/pubsub.yaml
        name: 'maxLenApprox'
        value: '10000'
      }
    ]
    scopes: daprAppIds
  }
}

// ACA does not read Dapr Resiliency YAML; these are its own (preview) policies.
resource pubsubResiliency 'Microsoft.App/managedEnvironments/daprComponents/resiliencyPolicies@2024-10-02-preview' = if (deployResiliencyPolicies) {
  parent: pubsub
  name: 'pubsub-resiliency'
  properties: {
    // delivery to the app: 5 retries, 1 s apart (components/resiliency.yaml pubsubRetry)
    inboundPolicy: {
      httpRetryPolicy: {
        maxRetries: 5
        retryBackOff: {
          initialDelayInMilliseconds: 1000
          maxIntervalInMilliseconds: 1000
        }
      }
    }
  }
}

resource statestoreResiliency 'Microsoft.App/managedEnvironments/daprComponents/resiliencyPolicies@2024-10-02-preview' = if (deployResiliencyPolicies) {
  parent: statestore
  name: 'statestore-resiliency'
  properties: {
    outboundPolicy: {
      timeoutPolicy: {
        responseTimeoutInSeconds: 30
      }
      httpRetryPolicy: {
        maxRetries: 3
        retryBackOff: {
          initialDelayInMilliseconds: 500
          maxIntervalInMilliseconds: 5000
        }
      }
    }
  }
}

resource api 'Microsoft.App/containerApps@2026-01-01' = {
  name: apiAppId
  location: location
  dependsOn: [
    statestore
    pubsub
  ]
  properties: {
    managedEnvironmentId: env.id
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: apiIngressExternal
        targetPort: appPort
        transport: 'auto'
        allowInsecure: false
      }
      dapr: {
        enabled: true
        appId: apiAppId
        appPort: appPort
        appProtocol: 'http'
        enableApiLogging: false
        logLevel: 'info'
        httpMaxRequestSize: maxBodyMiB
        appHealth: daprAppHealth
      }
      secrets: concat(registrySecrets, [
        {
          name: 'superstep-api-token'
          value: apiToken
        }
      ])
      registries: registries
    }
    template: {
      containers: [
        {
          name: 'api'
          image: image
          args: [
            'api'
            '--port'
            string(appPort)
          ]
          env: concat(commonEnv, [
            {
              // the Dapr app id, for the app's own records
              name: 'APP_ID'
              value: apiAppId
            }
            {
              // clients send Authorization: Bearer <token>
              name: 'SUPERSTEP_API_TOKEN'
              secretRef: 'superstep-api-token'
            }
          ])
          resources: {
            cpu: json('0.5')
            memory: '1Gi'
          }
          probes: probes
        }
      ]
      scale: {
        minReplicas: apiMinReplicas
        maxReplicas: apiMaxReplicas
        rules: [
          {
            name: 'http-requests'
            http: {
              metadata: {
                concurrentRequests: '50'
              }
            }
          }
        ]
      }
    }
  }
}

resource poolApps 'Microsoft.App/containerApps@2026-01-01' = [for (pool, i) in pools: {
  name: poolAppIds[i]
  location: location
  dependsOn: [
    statestore
    pubsub
  ]
  properties: {
    managedEnvironmentId: env.id
    configuration: {
      // one active revision: every revision of a pool would share its app id and consumer group
      activeRevisionsMode: 'Single'
      // no ingress: the app port is not exposed; its Dapr sidecar reaches it on localhost:appPort
      dapr: {
        enabled: true
        appId: poolAppIds[i]
        appPort: appPort
        appProtocol: 'http'
        enableApiLogging: false
        logLevel: 'info'
        httpMaxRequestSize: maxBodyMiB
        appHealth: daprAppHealth
      }
      secrets: concat(registrySecrets, [
        {
          name: 'redis-password'
          value: redisPassword
        }
      ])
      registries: registries
    }
    template: {
      containers: [
        {
          name: 'host'
          image: image
          args: [
            'host'
            '--port'
            string(appPort)
          ]
          env: concat(commonEnv, [
            {
              name: 'APP_ID'
              value: poolAppIds[i]
            }
            {
              name: 'SUPERSTEP_POOL'
              value: pool.name
            }
            {
              name: 'SUPERSTEP_LABELS'
              value: pool.labels
            }
          ])
          resources: {
            cpu: json('1.0')
            memory: '2Gi'
          }
          probes: probes
        }
      ]
      scale: {
        // never 0: the API refuses a run while a pool has no live host
        minReplicas: max(1, pool.minReplicas)
        maxReplicas: pool.maxReplicas
        rules: [
          {
            // KEDA redis-streams scaler on the pool's activation stream: Dapr writes topic T
            // to the stream T and reads it with the consumer group named after the app id.
            name: 'activation-backlog'
            custom: {
              type: 'redis-streams'
              metadata: {
                address: redisHost
                stream: '${superstepNamespace}.activations.${pool.name}'
                consumerGroup: poolAppIds[i]
                pendingEntriesCount: string(pendingEntriesPerReplica)
                enableTLS: tls
              }
              auth: [
                {
                  secretRef: 'redis-password'
                  triggerParameter: 'password'
                }
              ]
            }
          }
        ]
      }
    }
  }
}]

output environmentName string = env.name
output apiFqdn string = api.properties.configuration.ingress.fqdn
output daprAppIds array = daprAppIds
