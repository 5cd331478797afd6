// sqlembed on Azure Container Apps. Composes modules only; resources live in core/ and app/.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; prefixes every resource')
param environmentName string

@minLength(1)
@description('Region with Consumption-GPU-NC24-A100 capacity (docs/deploy.md lists them)')
param location string

@description('Your object id, granted Key Vault secret management for azd')
param principalId string = ''

@secure()
@description('The API key SQL Server sends (stored only in Key Vault)')
param apiKey string

@secure()
@description('SQLEMBED_DATABASES: JSON name -> SQLAlchemy URL for bulk jobs (stored only in Key Vault)')
param databases string
@description('Which SQLEMBED_DATABASES entry keeps the job records (its sqlembed.jobs table; deploy the T-SQL there)')
param jobStoreDatabase string = 'app'

@minValue(1)
@maxValue(20)
param maxGpuWorkers int = 2

var tags = { 'azd-env-name': environmentName }
var token = toLower(uniqueString(subscription().id, environmentName, location))

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module logs 'core/monitor/loganalytics.bicep' = {
  name: 'logs'
  scope: rg
  params: { name: 'log-${token}', location: location, tags: tags }
}

module network 'core/network/vnet.bicep' = {
  name: 'network'
  scope: rg
  params: { name: 'vnet-${token}', location: location, tags: tags }
}

module identity 'core/security/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: { name: 'id-${token}', location: location, tags: tags }
}

module registry 'core/host/container-registry.bicep' = {
  name: 'registry'
  scope: rg
  params: { name: 'cr${token}', location: location, tags: tags, pullPrincipalId: identity.outputs.principalId }
}

module storage 'core/storage/storage-account.bicep' = {
  name: 'storage'
  scope: rg
  params: { name: 'st${token}', location: location, tags: tags, shareName: 'sqlembed', subnetId: network.outputs.appsSubnetId }
}

module keyVault 'core/security/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${token}'
    location: location
    tags: tags
    readerPrincipalId: identity.outputs.principalId
    adminPrincipalId: principalId
    secrets: [
      { name: 'api-key', value: apiKey }
      { name: 'databases', value: databases }
    ]
  }
}

module environment 'core/host/container-apps-environment.bicep' = {
  name: 'environment'
  scope: rg
  params: {
    name: 'cae-${token}'
    location: location
    tags: tags
    logAnalyticsName: logs.outputs.name
    subnetId: network.outputs.appsSubnetId
    storageAccountName: storage.outputs.name
    shareName: storage.outputs.shareName
  }
}

module master 'app/master.bicep' = {
  name: 'master'
  scope: rg
  params: {
    name: 'ca-master-${token}'
    location: location
    tags: tags
    environmentId: environment.outputs.id
    storageName: environment.outputs.storageName
    identityId: identity.outputs.id
    registryServer: registry.outputs.loginServer
    apiKeySecretUri: keyVault.outputs.secretUris[0]
    databasesSecretUri: keyVault.outputs.secretUris[1]
    maxGpuWorkers: maxGpuWorkers
    jobStoreDatabase: jobStoreDatabase
  }
}

module worker 'app/worker-gpu.bicep' = {
  name: 'worker-gpu'
  scope: rg
  params: {
    name: 'ca-worker-${token}'
    location: location
    tags: tags
    environmentId: environment.outputs.id
    storageName: environment.outputs.storageName
    identityId: identity.outputs.id
    registryServer: registry.outputs.loginServer
    masterName: master.outputs.name
    apiKeySecretUri: keyVault.outputs.secretUris[0]
    maxReplicas: maxGpuWorkers
  }
}

output AZURE_CONTAINER_REGISTRY_ENDPOINT string = registry.outputs.loginServer
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_SQLEMBED_URL string = 'https://${master.outputs.fqdn}'
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
